#include "dataplane/transport/faulty_transport.h"

#include <atomic>
#include <cstring>
#include <vector>

#include "absl/synchronization/notification.h"
#include "dataplane/transport/inproc_transport.h"
#include "gtest/gtest.h"
#include "tests/unit/transport/transport_test_util.h"

namespace ferry::dataplane {
namespace {

using namespace std::chrono_literals;
using testing::Completion;
using testing::EncodeRange;

// Node 1 (the client) is wrapped in a FaultyTransport; node 2 serves ranges of src_.
class FaultyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto inner = InprocTransport::Create(fabric_, 1);
    auto server = InprocTransport::Create(fabric_, 2);
    ASSERT_TRUE(inner.ok() && server.ok());
    client_ = std::make_unique<FaultyTransport>(*std::move(inner));
    server_ = *std::move(server);
    for (size_t i = 0; i < src_.size(); ++i) src_[i] = static_cast<char>(i * 13 + 5);
    auto region = server_->RegisterMemory(MemoryKind::kHost, src_.data(), src_.size());
    ASSERT_TRUE(region.ok()) << region.status();
    src_region_ = *std::move(region);
    scratch_ = std::make_unique<testing::ScratchArena>(*client_, 1 << 20);
    dst_ = scratch_->Take(1 << 16);
    server_->SetFetchHandler([this](NodeId, std::string_view header,
                                    std::unique_ptr<FetchResponder> r) {
      auto h = testing::DecodeRange(header);
      if (!h) return r->Fail(absl::InvalidArgumentError("bad header"));
      if (h->verb == 4) {  // hold: answered only when the test releases it
        held_.push_back(std::move(r));
        held_count_++;
        return;
      }
      r->Reply(src_region_.Slice(h->offset, h->length), [](absl::Status) {});
    });
    client_->SetPeerFailureHandler([this](NodeId peer, const absl::Status& why) {
      EXPECT_EQ(peer, 2u);
      EXPECT_EQ(why.code(), absl::StatusCode::kUnavailable);
      if (failures_.fetch_add(1) == 0) failed_.Notify();
    });
    ASSERT_TRUE(client_->AddPeer(2, server_->LocalAddress()).ok());
    ASSERT_TRUE(server_->AddPeer(1, client_->LocalAddress()).ok());
  }
  void TearDown() override {
    client_->Shutdown();
    server_->Shutdown();
  }
  absl::Status FetchOnce(size_t offset, size_t len) {
    std::memset(dst_.data(), 0, len);
    Completion c;
    client_->Fetch(2, EncodeRange({offset, len, 0}), dst_.Slice(0, len), c.done());
    auto st = c.Wait();
    if (!st) return absl::DeadlineExceededError("test: fetch hung");
    if (st->ok() && std::memcmp(dst_.data(), src_.data() + offset, len) != 0) {
      return absl::DataLossError("test: bytes differ");
    }
    return *st;
  }

  std::shared_ptr<InprocFabric> fabric_ = std::make_shared<InprocFabric>();
  std::unique_ptr<FaultyTransport> client_;
  std::unique_ptr<InprocTransport> server_;
  std::vector<char> src_ = std::vector<char>(1 << 16);
  MemoryRegion src_region_;   // src_, registered with the server
  std::unique_ptr<testing::ScratchArena> scratch_;   // registered with the client
  testing::ScratchArena::Buffer dst_;   // FetchOnce lands here
  std::vector<std::unique_ptr<FetchResponder>> held_;
  std::atomic<int> held_count_{0};
  std::atomic<int> failures_{0};
  absl::Notification failed_;
};

TEST_F(FaultyTest, ForwardsWithoutFaults) {
  EXPECT_TRUE(FetchOnce(10, 5000).ok());
  EXPECT_EQ(client_->Stats().bytes_fetched, 5000u);
  EXPECT_EQ(client_->injected_failures(), 0u);
  EXPECT_EQ(client_->Name(), "faulty");
}

TEST_F(FaultyTest, FailConnect) {
  client_->FailConnect(3);
  EXPECT_EQ(client_->AddPeer(3, "3").code(), absl::StatusCode::kUnavailable);
  client_->FailConnect(2);
  absl::Status st = FetchOnce(0, 10);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("node 2"), absl::string_view::npos);
  client_->FailConnect(2, false);
  EXPECT_TRUE(FetchOnce(0, 10).ok());
  EXPECT_EQ(failures_.load(), 0) << "a refused connection is not a peer failure";
}

TEST_F(FaultyTest, PeerDiesAfterBytes) {
  Completion outstanding;
  auto small = scratch_->Take(8);
  client_->Fetch(2, EncodeRange({0, 8, 4}), small.Slice(0, 8), outstanding.done());
  for (int i = 0; i < 5000 && held_count_ == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(held_count_, 1);

  client_->FailPeerAfterBytes(2, 2500);
  EXPECT_TRUE(FetchOnce(0, 1000).ok());
  EXPECT_TRUE(FetchOnce(0, 1000).ok());
  EXPECT_FALSE(client_->IsFailed(2));
  EXPECT_TRUE(FetchOnce(0, 1000).ok());  // crosses 2500: completes OK, then the peer dies
  EXPECT_TRUE(client_->IsFailed(2));
  ASSERT_TRUE(failed_.WaitForNotificationWithTimeout(absl::Seconds(10)));

  auto st = outstanding.Wait();
  ASSERT_TRUE(st.has_value()) << "outstanding op hung";
  EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
  EXPECT_EQ(FetchOnce(0, 10).code(), absl::StatusCode::kUnavailable);
  Completion read;
  client_->Read(2, RemoteSlice{src_region_.remote_key, 0, 1}, small.Slice(0, 1), read.done());
  EXPECT_EQ(read.Wait()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failures_.load(), 1);
  EXPECT_EQ(client_->Stats().peer_failures, 1u);

  ASSERT_TRUE(client_->HealPeer(2).ok());
  EXPECT_TRUE(FetchOnce(100, 100).ok());
}

TEST_F(FaultyTest, FailPeerNowFailsOutstandingOps) {
  auto small = scratch_->Take(8);
  Completion a;
  client_->Fetch(2, EncodeRange({0, 8, 4}), small.Slice(0, 8), a.done());
  for (int i = 0; i < 5000 && held_count_ == 0; ++i) std::this_thread::sleep_for(1ms);
  client_->FailPeerNow(2);
  EXPECT_EQ(a.Wait()->code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(failed_.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_F(FaultyTest, DelaysCompletions) {
  client_->SetCompletionDelay(50ms);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(FetchOnce(0, 100).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  client_->ClearFaults();
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(FetchOnce(0, 100).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 50ms);
}

TEST_F(FaultyTest, ShutdownDeliversDelayedCompletions) {
  client_->SetCompletionDelay(10s);
  auto small = scratch_->Take(8);
  Completion c;
  client_->Fetch(2, EncodeRange({0, 8, 0}), small.Slice(0, 8), c.done());
  std::this_thread::sleep_for(20ms);
  client_->Shutdown();
  EXPECT_TRUE(c.Wait(0ms).has_value()) << "Shutdown must flush delayed completions";
}

}  // namespace
}  // namespace ferry::dataplane
