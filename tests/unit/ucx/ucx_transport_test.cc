// Tests of the UCX transport: two or three transports in one process over TCP and shared
// memory (UCX's defaults; the address tests pin UCX_NET_DEVICES=lo), plus a real peer death: a child
// process serving data is SIGKILLed mid-transfer. Every wait has a deadline.
#include "dataplane/ucx/ucx_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/unit/transport/transport_test_util.h"

namespace ferry::dataplane {
namespace {

using namespace std::chrono_literals;
using testing::Completion;
using testing::DecodeRange;
using testing::EncodeRange;
using testing::FillPattern;
using testing::FirstMismatch;
using testing::RangeHeader;

constexpr size_t kMiB = 1 << 20;
constexpr auto kDeadline = 30s;

// Pre-touched anonymous memory (page faults are slow on these VMs).
class Buffer {
 public:
  explicit Buffer(size_t len) : len_(len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  ~Buffer() {
    if (data_ != nullptr) munmap(data_, len_);
  }
  uint8_t* data() const { return data_; }
  size_t size() const { return len_; }
  // [off, off+len) of this buffer as a slice of its registration with `t` (registered on
  // first use with each transport).
  LocalSlice On(Transport& t, size_t off, size_t len) {
    auto it = regions_.find(&t);
    if (it == regions_.end()) {
      absl::StatusOr<MemoryRegion> r = t.RegisterMemory(MemoryKind::kHost, data_, len_);
      EXPECT_TRUE(r.ok()) << r.status();
      it = regions_.emplace(&t, r.ok() ? r->id : kNoRegion).first;
    }
    return LocalSlice{it->second, off, len};
  }

 private:
  size_t len_;
  uint8_t* data_;
  std::map<Transport*, RegionId> regions_;
};

std::unique_ptr<Transport> MakeUcx(NodeId id,
                                   UcxTransportOptions::ReceiveCopy copy = UcxTransportOptions::ReceiveCopy::kUcx,
                                   uint32_t unknown_peer_wait_ms = 5000) {
  UcxTransportOptions options;
  options.self = id;
  options.receive_copy = copy;
  options.unknown_peer_wait_ms = unknown_peer_wait_ms;
  auto t = CreateUcxTransport(options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// Serves ranges of `src` (seed 7 pattern) according to RangeHeader verbs.
class Server {
 public:
  Server(Transport* t, size_t len) : t_(t), buf_(len) {
    FillPattern(7, buf_.data(), len);
    t->SetFetchHandler([this](NodeId, std::string_view header,
                              std::unique_ptr<FetchResponder> r) { Handle(header, std::move(r)); });
  }
  ~Server() {
    for (auto& th : threads_) th.join();
  }
  const Buffer& buffer() const { return buf_; }
  RegionId region() const { return region_; }
  int hung() const { return hung_.load(); }
  void ReleaseHung() {
    std::lock_guard<std::mutex> lock(mu_);
    held_.clear();  // destroying unanswered responders fails their requests (INTERNAL)
    held_ranges_.clear();
  }
  // Answers every held request with its range; `sent` gets each send's outcome.
  void ReplyHung(const std::function<void(absl::Status)>& sent) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < held_.size(); ++i) {
      held_[i]->Reply(LocalSlice{region_, held_ranges_[i].first, held_ranges_[i].second},
                      [sent](absl::Status st) { sent(st); });
    }
    held_.clear();
    held_ranges_.clear();
  }

 private:
  void Handle(std::string_view header, std::unique_ptr<FetchResponder> r) {
    auto h = DecodeRange(header);
    if (!h || h->offset + h->length > buf_.size()) {
      return r->Fail(absl::InvalidArgumentError("bad range header"));
    }
    const LocalSlice src{region_, h->offset, h->length};
    switch (h->verb) {
      case 0: return r->Reply(src, [](absl::Status) {});
      case 1: {  // answer later from another thread
        std::lock_guard<std::mutex> lock(mu_);
        threads_.emplace_back([r = std::move(r), src]() mutable {
          std::this_thread::sleep_for(20ms);
          r->Reply(src, [](absl::Status) {});
        });
        return;
      }
      case 2: return r->Fail(absl::NotFoundError("no such chunk 7 of object k"));
      case 3: return r->Reply(LocalSlice{region_, h->offset, h->length + 1}, [](absl::Status) {});
      default: {
        std::lock_guard<std::mutex> lock(mu_);
        held_.push_back(std::move(r));
        held_ranges_.emplace_back(h->offset, h->length);
        hung_.fetch_add(1);
      }
    }
  }

  Transport* t_;
  Buffer buf_;   // registered with t_ (region_): replies are slices of it
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<FetchResponder>> held_;
  std::vector<std::pair<uint64_t, size_t>> held_ranges_;   // offsets into buf_
  RegionId region_ = buf_.On(*t_, 0, 0).region;
  std::atomic<int> hung_{0};
};

class UcxTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (NodeId id : {1, 2}) {
      t_.push_back(MakeUcx(id));
      ASSERT_NE(t_.back(), nullptr);
    }
    Connect(*t_[0], *t_[1]);
  }
  static void Connect(Transport& a, Transport& b) {
    ASSERT_TRUE(a.AddPeer(b.self(), b.LocalAddress()).ok());
    ASSERT_TRUE(b.AddPeer(a.self(), a.LocalAddress()).ok());
  }
  absl::Status FetchRange(Transport& client, NodeId server, RangeHeader h, Buffer& dst) {
    Completion c;
    client.Fetch(server, EncodeRange(h), dst.On(client, 0, h.length), c.done());
    auto st = c.Wait(kDeadline);
    return st ? *st : absl::DeadlineExceededError("test: fetch did not complete");
  }
  std::vector<std::unique_ptr<Transport>> t_;
};

TEST_F(UcxTransportTest, FetchSizesLandByteExact) {
  Server server(t_[1].get(), 64 * kMiB);
  Buffer dst(64 * kMiB + 64);
  for (size_t len : {size_t{0}, size_t{1}, size_t{8191}, size_t{8192}, size_t{8193},
                     size_t{kMiB}, size_t{64 * kMiB}}) {
    SCOPED_TRACE(len);
    uint64_t off = len == 64 * kMiB ? 0 : 13;
    std::memset(dst.data(), 0, std::min(dst.size(), len + 64));
    ASSERT_TRUE(FetchRange(*t_[0], 2, {off, len, 0}, dst).ok());
    EXPECT_EQ(FirstMismatch(7, dst.data(), len, off), -1);
    if (len < 64 * kMiB) {
      EXPECT_EQ(dst.data()[len], 0) << "wrote past the end";
    }
  }
  TransportStats s = t_[0]->Stats();
  EXPECT_EQ(s.fetches, 7u);
  EXPECT_EQ(s.bytes_fetched, 0 + 1 + 8191 + 8192 + 8193 + kMiB + 64 * kMiB);
}

// Rendezvous replies land byte-exact with either receive path: UCX's own, and the streaming
// datatype (from streaming_copy_min up), at destinations of every alignment class.
TEST(UcxReceiveCopy, BothPathsLandByteExact) {
  for (auto copy : {UcxTransportOptions::ReceiveCopy::kUcx, UcxTransportOptions::ReceiveCopy::kStreaming}) {
    SCOPED_TRACE(copy == UcxTransportOptions::ReceiveCopy::kUcx ? "ucx" : "streaming");
    std::unique_ptr<Transport> client = MakeUcx(1, copy), server_t = MakeUcx(2, copy);
    ASSERT_NE(client, nullptr);
    ASSERT_NE(server_t, nullptr);
    ASSERT_TRUE(client->AddPeer(2, server_t->LocalAddress()).ok());
    ASSERT_TRUE(server_t->AddPeer(1, client->LocalAddress()).ok());
    Server server(server_t.get(), 8 * kMiB);
    Buffer dst(8 * kMiB + 4096);
    const size_t kMin = UcxTransportOptions{}.streaming_copy_min;
    for (size_t len : {kMin - 1, kMin, kMin + 13, 4 * kMiB + 5, 8 * kMiB}) {
      for (size_t dst_off : {size_t{0}, size_t{3}, size_t{64 + 9}}) {
        SCOPED_TRACE(absl::StrCat("len ", len, " dst offset ", dst_off));
        if (len + dst_off + 1 > dst.size()) continue;
        std::memset(dst.data(), 0xA5, len + dst_off + 1);
        const uint64_t src_off = len == 8 * kMiB ? 0 : 5;
        Completion c;
        client->Fetch(2, EncodeRange({src_off, len, 0}), dst.On(*client, dst_off, len), c.done());
        auto st = c.Wait(kDeadline);
        ASSERT_TRUE(st.has_value()) << "fetch did not complete";
        ASSERT_TRUE(st->ok()) << *st;
        EXPECT_EQ(FirstMismatch(7, dst.data() + dst_off, len, src_off), -1);
        if (dst_off > 0) {
          EXPECT_EQ(dst.data()[dst_off - 1], 0xA5) << "wrote before the start";
        }
        EXPECT_EQ(dst.data()[dst_off + len], 0xA5) << "wrote past the end";
      }
    }
    client->Shutdown();
    server_t->Shutdown();
  }
}

TEST(UcxReceiveCopy, ParseNamesTheChoices) {
  EXPECT_EQ(*ParseReceiveCopy("ucx"), UcxTransportOptions::ReceiveCopy::kUcx);
  EXPECT_EQ(*ParseReceiveCopy("streaming"), UcxTransportOptions::ReceiveCopy::kStreaming);
  absl::StatusOr<UcxTransportOptions::ReceiveCopy> bad = ParseReceiveCopy("auto");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("ucx, streaming"), std::string::npos) << bad.status();
}

TEST_F(UcxTransportTest, DeferredReplyFromAnotherThread) {
  Server server(t_[1].get(), 4 * kMiB);
  Buffer dst(4 * kMiB);
  for (size_t len : {size_t{100}, size_t{4 * kMiB}}) {
    ASSERT_TRUE(FetchRange(*t_[0], 2, {0, len, 1}, dst).ok());
    EXPECT_EQ(FirstMismatch(7, dst.data(), len), -1);
  }
}

TEST_F(UcxTransportTest, FailKeepsCodeAndMessage) {
  Server server(t_[1].get(), kMiB);
  Buffer dst(kMiB);
  absl::Status st = FetchRange(*t_[0], 2, {0, 1000, 2}, dst);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_NE(st.message().find("no such chunk 7 of object k"), absl::string_view::npos) << st;
  st = FetchRange(*t_[0], 2, {0, 100000, 3}, dst);  // reply of the wrong length
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal) << st;
  EXPECT_EQ(t_[0]->Stats().failures, 2u);
}

TEST_F(UcxTransportTest, DroppedResponderFailsWithInternal) {
  Server server(t_[1].get(), kMiB);
  Buffer dst(kMiB);
  Completion c;
  t_[0]->Fetch(2, EncodeRange({0, 10, 4}), dst.On(*t_[0], 0, 10), c.done());
  for (auto until = std::chrono::steady_clock::now() + kDeadline;
       server.hung() == 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  server.ReleaseHung();
  auto st = c.Wait(kDeadline);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kInternal) << *st;
}

// Slices are checked against their regions before anything is posted; other memory kinds
// are refused until CUDA support exists.
TEST_F(UcxTransportTest, RangesOutsideTheirRegionsAndOtherKindsAreRefused) {
  Server server(t_[1].get(), kMiB);
  Buffer dst(4096);
  const LocalSlice whole = dst.On(*t_[0], 0, 4096);
  Completion past_end, wraps, unknown, read_oob, bad_reply;
  t_[0]->Fetch(2, EncodeRange({0, 16, 0}), LocalSlice{whole.region, 4090, 16}, past_end.done());
  t_[0]->Fetch(2, EncodeRange({0, 16, 0}), LocalSlice{whole.region, ~uint64_t{0} - 3, 16}, wraps.done());
  t_[0]->Fetch(2, EncodeRange({0, 16, 0}), LocalSlice{whole.region + 50, 0, 16}, unknown.done());
  auto st = past_end.Wait(kDeadline);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kOutOfRange) << *st;
  EXPECT_EQ(wraps.Wait(kDeadline)->code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(unknown.Wait(kDeadline)->code(), absl::StatusCode::kInvalidArgument);
  // The server's reply from outside its own region: the requester sees INTERNAL.
  t_[0]->Fetch(2, EncodeRange({kMiB - 8, 8, 3}), dst.On(*t_[0], 0, 8), bad_reply.done());
  // (verb 3 replies one byte more than asked: past the end of the server's 1 MiB region)
  EXPECT_EQ(bad_reply.Wait(kDeadline)->code(), absl::StatusCode::kInternal);
  Buffer src(4096);
  auto region = t_[1]->RegisterMemory(MemoryKind::kHost, src.data(), src.size());
  ASSERT_TRUE(region.ok()) << region.status();
  t_[0]->Read(2, RemoteSlice{region->remote_key, 4000, 100}, dst.On(*t_[0], 0, 100), read_oob.done());
  EXPECT_EQ(read_oob.Wait(kDeadline)->code(), absl::StatusCode::kOutOfRange);
  auto cuda = t_[0]->RegisterMemory(MemoryKind::kCudaDevice, dst.data(), dst.size());
  ASSERT_FALSE(cuda.ok());
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(cuda.status().message().find("cuda-device"), std::string::npos) << cuda.status();
  EXPECT_EQ(t_[0]->Stats().bytes_fetched, 0u);
}

TEST_F(UcxTransportTest, ReadRegisteredMemory) {
  Buffer src(32 * kMiB);
  FillPattern(9, src.data(), src.size());
  auto region = t_[1]->RegisterMemory(MemoryKind::kHost, src.data(), src.size());
  ASSERT_TRUE(region.ok()) << region.status();
  Buffer dst(32 * kMiB);
  for (auto [off, len] : {std::pair<size_t, size_t>{5, 1}, {4096, kMiB}, {0, 32 * kMiB}}) {
    SCOPED_TRACE(len);
    Completion c;
    t_[0]->Read(2, RemoteSlice{region->remote_key, off, len}, dst.On(*t_[0], 0, len), c.done());
    auto st = c.Wait(kDeadline);
    ASSERT_TRUE(st.has_value());
    ASSERT_TRUE(st->ok()) << *st;
    EXPECT_EQ(FirstMismatch(9, dst.data(), len, off), -1);
  }
  EXPECT_EQ(t_[0]->Stats().reads, 3u);
}

TEST_F(UcxTransportTest, ControlMessages) {
  absl::Notification got;
  std::string received;
  NodeId from = 0;
  t_[1]->SetControlHandler([&](NodeId f, std::string_view bytes) {
    from = f;
    received = std::string(bytes);
    got.Notify();
  });
  std::string msg(60000, 'x');
  msg[0] = 'h';
  Completion c;
  t_[0]->SendControl(2, msg, c.done());
  auto st = c.Wait(kDeadline);
  ASSERT_TRUE(st.has_value() && st->ok());
  ASSERT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(from, 1u);
  EXPECT_EQ(received, msg);
  Completion too_big;
  t_[0]->SendControl(2, std::string(65 * 1024 + 1, 'y'), too_big.done());
  st = too_big.Wait(kDeadline);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(UcxTransportTest, UnknownPeers) {
  Buffer dst(kMiB);
  absl::Status st = FetchRange(*t_[0], 99, {0, 10, 0}, dst);  // never added here
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("99"), absl::string_view::npos);
  EXPECT_EQ(t_[0]->AddPeer(5, "garbage").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_[0]->AddPeer(5, t_[1]->LocalAddress()).code(), absl::StatusCode::kInvalidArgument);

}

// A request from a node the responder has not added yet (membership reached the requester
// first) is held, and served once AddPeer comes; so is a control message.
TEST(UcxUnknownPeer, HeldUntilAddedThenServed) {
  auto server_t = MakeUcx(2);
  auto client = MakeUcx(3);
  ASSERT_NE(server_t, nullptr);
  ASSERT_NE(client, nullptr);
  Server server(server_t.get(), kMiB);
  absl::Notification got_control;
  std::string control;
  server_t->SetControlHandler([&](NodeId from, std::string_view bytes) {
    control = absl::StrCat(from, ":", std::string(bytes));
    got_control.Notify();
  });
  ASSERT_TRUE(client->AddPeer(2, server_t->LocalAddress()).ok());
  Buffer dst(kMiB);
  Completion fetch, sent;
  client->Fetch(2, EncodeRange({0, kMiB, 0}), dst.On(*client, 0, kMiB), fetch.done());
  client->SendControl(2, "hello", sent.done());
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(fetch.Ready()) << "served before the requester was added";
  EXPECT_FALSE(got_control.HasBeenNotified());
  ASSERT_TRUE(server_t->AddPeer(3, client->LocalAddress()).ok());
  auto st = fetch.Wait(kDeadline);
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(st->ok()) << *st;
  EXPECT_EQ(FirstMismatch(7, dst.data(), kMiB, 0), -1);
  ASSERT_TRUE(got_control.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(control, "3:hello");
  EXPECT_EQ(server_t->Stats().dropped_requests, 0u);
}

// A node that never becomes a peer: its request is dropped after the wait and counted, and
// adding the node later does not serve it.
TEST(UcxUnknownPeer, DroppedAfterTheWait) {
  auto server_t = MakeUcx(2, UcxTransportOptions::ReceiveCopy::kUcx, /*unknown_peer_wait_ms=*/200);
  auto stranger = MakeUcx(3);
  ASSERT_NE(server_t, nullptr);
  ASSERT_NE(stranger, nullptr);
  Server server(server_t.get(), kMiB);
  ASSERT_TRUE(stranger->AddPeer(2, server_t->LocalAddress()).ok());
  Buffer dst(kMiB);
  Completion c;
  const auto start = std::chrono::steady_clock::now();
  stranger->Fetch(2, EncodeRange({0, 10, 0}), dst.On(*stranger, 0, 10), c.done());
  for (auto until = start + kDeadline;
       server_t->Stats().dropped_requests == 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(server_t->Stats().dropped_requests, 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms) << "dropped before the wait";
  ASSERT_TRUE(server_t->AddPeer(3, stranger->LocalAddress()).ok());
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(c.Ready());
  stranger->Shutdown();  // the unanswered fetch completes with CANCELLED
  auto done = c.Wait(1s);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->code(), absl::StatusCode::kCancelled) << *done;
}

TEST_F(UcxTransportTest, ManyConcurrentFetchesAmongThreeNodes) {
  t_.push_back(MakeUcx(3));
  ASSERT_NE(t_[2], nullptr);
  Connect(*t_[0], *t_[2]);
  Connect(*t_[1], *t_[2]);
  std::vector<std::unique_ptr<Server>> servers;
  for (auto& t : t_) servers.push_back(std::make_unique<Server>(t.get(), 8 * kMiB));
  constexpr int kPerClient = 150;
  struct Pending {
    Completion c;
    RangeHeader h;
    std::unique_ptr<Buffer> dst;
  };
  std::vector<std::unique_ptr<Pending>> pending;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 3 * kPerClient; ++i) {
    auto p = std::make_unique<Pending>();
    size_t len = rng() % 4 == 0 ? rng() % (2 * kMiB) : rng() % 20000;
    p->h = {rng() % (6 * kMiB), len, static_cast<uint32_t>(rng() % 5 == 0 ? 1 : 0)};
    p->dst = std::make_unique<Buffer>(std::max<size_t>(len, 1));
    Transport& client = *t_[i % 3];
    NodeId server = (client.self() % 3) + 1;  // 1->2, 2->3, 3->1
    client.Fetch(server, EncodeRange(p->h), p->dst->On(client, 0, len), p->c.done());
    pending.push_back(std::move(p));
  }
  for (auto& p : pending) {
    auto st = p->c.Wait(kDeadline);
    ASSERT_TRUE(st.has_value());
    ASSERT_TRUE(st->ok()) << *st;
    ASSERT_EQ(FirstMismatch(7, p->dst->data(), p->h.length, p->h.offset), -1);
  }
}

TEST_F(UcxTransportTest, ShutdownCancelsOutstandingAndIsIdempotent) {
  Server server(t_[1].get(), kMiB);
  Buffer dst(kMiB);
  Completion c;
  t_[0]->Fetch(2, EncodeRange({0, 100, 4}), dst.On(*t_[0], 0, 100), c.done());
  for (auto until = std::chrono::steady_clock::now() + kDeadline;
       server.hung() == 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  t_[0]->Shutdown();
  auto st = c.Wait(0ms);
  ASSERT_TRUE(st.has_value()) << "Shutdown returned before completing the fetch";
  EXPECT_EQ(st->code(), absl::StatusCode::kCancelled);
  t_[0]->Shutdown();
  Completion after;
  t_[0]->Fetch(2, "", LocalSlice{}, after.done());  // dropped: no callback after Shutdown
  EXPECT_FALSE(after.Wait(50ms).has_value());
  server.ReleaseHung();
}

// A cancelled fetch completes with CANCELLED before its reply arrives; the reply that comes
// later (eager or rendezvous) lands nowhere, and the connection keeps working.
TEST_F(UcxTransportTest, CancelledFetchCompletesAtOnceAndItsLateReplyLandsNowhere) {
  Server server(t_[1].get(), 4 * kMiB);
  for (size_t len : {size_t{1000}, size_t{2 * kMiB}}) {   // eager, rendezvous
    SCOPED_TRACE(len);
    Buffer dst(len);
    std::memset(dst.data(), 0xAB, len);
    const int hung_before = server.hung();
    Completion fetched;
    const FetchId id = t_[0]->Fetch(2, EncodeRange({0, len, 4}), dst.On(*t_[0], 0, len), fetched.done());
    EXPECT_NE(id, 0u);
    for (auto until = std::chrono::steady_clock::now() + kDeadline;
         server.hung() == hung_before && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_GT(server.hung(), hung_before);
    t_[0]->CancelFetch(id);
    auto st = fetched.Wait(kDeadline);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->code(), absl::StatusCode::kCancelled) << *st;
    Completion sent;
    auto sent_done = std::make_shared<Done>(sent.done());   // one request is held: called once
    server.ReplyHung([sent_done](absl::Status s) { (*sent_done)(std::move(s)); });
    auto sent_st = sent.Wait(kDeadline);
    ASSERT_TRUE(sent_st.has_value());
    if (len > 8 * 1024) {
      EXPECT_FALSE(sent_st->ok()) << "a rendezvous reply nobody takes fails its send";
    }
    // A fetch after it over the same connection: once it is back, the late reply was handled.
    Buffer probe(100);
    ASSERT_TRUE(FetchRange(*t_[0], 2, {0, 100, 0}, probe).ok());
    size_t touched = 0;
    for (size_t i = 0; i < len; ++i) touched += dst.data()[i] != 0xAB;
    EXPECT_EQ(touched, 0u) << "bytes of a cancelled fetch landed";
    t_[0]->CancelFetch(id);   // completed: no-op
  }
}

TEST_F(UcxTransportTest, ResetPeerFailsOutstandingFetchesAndReconnects) {
  Server server(t_[1].get(), kMiB);
  Buffer dst(kMiB);
  Completion hang;
  t_[0]->Fetch(2, EncodeRange({0, 100, 4}), dst.On(*t_[0], 0, 100), hang.done());
  for (auto until = std::chrono::steady_clock::now() + kDeadline;
       server.hung() == 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  t_[0]->ResetPeer(2);
  auto st = hang.Wait(kDeadline);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
  EXPECT_TRUE(t_[0]->HasPeer(2));
  EXPECT_TRUE(FetchRange(*t_[0], 2, {0, 4096, 0}, dst).ok());
  server.ReleaseHung();
}

TEST_F(UcxTransportTest, IdleTransportsUseLittleCpu) {
  auto cpu = [] {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 +
           ru.ru_stime.tv_usec;
  };
  std::this_thread::sleep_for(200ms);  // let connection setup settle
  double before = cpu();
  std::this_thread::sleep_for(1s);
  double used_us = cpu() - before;
  EXPECT_LT(used_us, 50000) << "two idle transports used " << used_us / 1e4 << "% of a core";
}

// ---- a real peer death --------------------------------------------------------------------

bool WriteBlob(int fd, const std::string& s) {
  uint32_t n = s.size();
  return write(fd, &n, 4) == 4 && write(fd, s.data(), n) == static_cast<ssize_t>(n);
}

std::optional<std::string> ReadBlob(int fd, std::chrono::milliseconds deadline) {
  std::string out;
  uint32_t n = 0;
  size_t want = 4, got = 0;
  auto until = std::chrono::steady_clock::now() + deadline;
  char* dst = reinterpret_cast<char*>(&n);
  for (int phase = 0; phase < 2; ++phase) {
    while (got < want) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, left.count()) <= 0) return std::nullopt;
      ssize_t r = read(fd, dst + got, want - got);
      if (r <= 0) return std::nullopt;
      got += r;
    }
    if (phase == 0) {
      out.resize(n);
      dst = out.data();
      want = n;
      got = 0;
    }
  }
  return out;
}

// Runs only inside the child process started by PeerKilledMidTransfer.
TEST(UcxChildProcess, Serve) {
  const char* fds = std::getenv("FERRY_UCX_CHILD_FDS");
  if (fds == nullptr) GTEST_SKIP() << "helper for PeerKilledMidTransfer";
  int rd = -1, wr = -1;
  ASSERT_EQ(sscanf(fds, "%d,%d", &rd, &wr), 2);
  auto t = MakeUcx(2);
  ASSERT_NE(t, nullptr);
  Server server(t.get(), 64 * kMiB);
  ASSERT_TRUE(WriteBlob(wr, t->LocalAddress()));
  auto parent = ReadBlob(rd, 30s);
  ASSERT_TRUE(parent.has_value());
  ASSERT_TRUE(t->AddPeer(1, *parent).ok());
  ASSERT_TRUE(WriteBlob(wr, "ready"));
  ReadBlob(rd, 120s);  // serve until killed (or the parent goes away)
}

TEST(UcxPeerFailure, PeerKilledMidTransfer) {
  int p2c[2], c2p[2];
  ASSERT_EQ(pipe(p2c), 0);
  ASSERT_EQ(pipe(c2p), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // child: a fresh process image, so no UCX state crosses the fork
    std::string fds = std::to_string(p2c[0]) + "," + std::to_string(c2p[1]);
    setenv("FERRY_UCX_CHILD_FDS", fds.c_str(), 1);
    execl("/proc/self/exe", "ucx_child", "--gtest_filter=UcxChildProcess.Serve", nullptr);
    _exit(127);
  }
  close(p2c[0]);
  close(c2p[1]);
  auto reap = [pid] {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  };
  auto child_address = ReadBlob(c2p[0], 30s);
  if (!child_address) reap();
  ASSERT_TRUE(child_address.has_value()) << "child did not start";

  auto t = MakeUcx(1);
  ASSERT_NE(t, nullptr);
  std::atomic<int> failures{0};
  absl::Notification failed;
  absl::Status why;
  t->SetPeerFailureHandler([&](NodeId peer, const absl::Status& st) {
    EXPECT_EQ(peer, 2u);
    why = st;
    if (failures.fetch_add(1) == 0) failed.Notify();
  });
  ASSERT_TRUE(t->AddPeer(2, *child_address).ok());
  ASSERT_TRUE(WriteBlob(p2c[1], t->LocalAddress()));
  ASSERT_TRUE(ReadBlob(c2p[0], 30s).has_value());

  constexpr size_t kChunk = 16 * kMiB;
  constexpr int kChunks = 8;
  Buffer dst(kChunks * kChunk);
  Completion hang;  // never answered by the child
  t->Fetch(2, EncodeRange({0, 10, 4}), dst.On(*t, 0, 10), hang.done());
  std::vector<Completion> chunks(kChunks);
  for (int i = 0; i < kChunks; ++i) {
    t->Fetch(2, EncodeRange({(i % 4) * kChunk, kChunk, 0}), dst.On(*t, i * kChunk, kChunk),
             chunks[i].done());
  }
  auto first = chunks[0].Wait(kDeadline);  // data is flowing...
  reap();                                  // ...and the peer dies
  ASSERT_TRUE(first.has_value());

  int unavailable = 0;
  for (auto* c : {&hang}) {
    auto st = c->Wait(kDeadline);
    ASSERT_TRUE(st.has_value()) << "outstanding fetch hung after the peer died";
    EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
    EXPECT_NE(st->message().find("node 2"), absl::string_view::npos) << *st;
  }
  for (int i = 1; i < kChunks; ++i) {
    auto st = chunks[i].Wait(kDeadline);
    ASSERT_TRUE(st.has_value()) << "chunk " << i << " hung after the peer died";
    if (!st->ok()) {
      EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
      ++unavailable;
    }
  }
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(why.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(why.message().find("connection to node 2 lost: "), absl::string_view::npos) << why;
  EXPECT_EQ(failures.load(), 1);
  std::printf("peer failure: %s; %d of %d chunks failed\n", why.ToString().c_str(), unavailable,
              kChunks - 1);
  EXPECT_EQ(t->Stats().peer_failures, 1u);
  close(p2c[1]);
  close(c2p[0]);
}

}  // namespace
}  // namespace ferry::dataplane
