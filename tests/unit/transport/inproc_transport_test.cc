#include "dataplane/transport/inproc_transport.h"

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/unit/transport/transport_test_util.h"

namespace ferry::dataplane {
namespace {

using namespace std::chrono_literals;
using testing::Completion;

class InprocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (NodeId id : {1, 2, 3}) {
      auto t = InprocTransport::Create(fabric_, id);
      ASSERT_TRUE(t.ok()) << t.status();
      t_.push_back(*std::move(t));
    }
    for (auto& a : t_) {
      for (auto& b : t_) {
        if (a != b) {
          ASSERT_TRUE(a->AddPeer(b->self(), b->LocalAddress()).ok());
        }
      }
    }
    for (size_t i = 0; i < src_.size(); ++i) src_[i] = static_cast<char>(i * 7 + 1);
    auto region = t_[1]->RegisterMemory(MemoryKind::kHost, src_.data(), src_.size());
    ASSERT_TRUE(region.ok()) << region.status();
    src_region_ = *std::move(region);
    for (auto& t : t_) scratch_.push_back(std::make_unique<testing::ScratchArena>(*t, 8 << 20));
    // Node 2 serves ranges of src_; "defer" answers later from another thread.
    t_[1]->SetFetchHandler([this](NodeId, std::string_view header,
                                  std::unique_ptr<FetchResponder> r) {
      auto h = testing::DecodeRange(header);
      if (!h) return r->Fail(absl::InvalidArgumentError("bad header"));
      if (h->verb == 2) return r->Fail(absl::NotFoundError("chunk 3 missing"));
      if (h->verb == 4) {
        held_.push_back(std::move(r));
        held_count_++;
        return;
      }
      const LocalSlice src = src_region_.Slice(h->offset, h->length);
      if (h->verb == 5) return r->Reply(src_region_.Slice(src_.size() - 8, 16), [this](absl::Status st) {
        bad_reply_sent_ = st;
        bad_reply_.Notify();
      });
      if (h->verb == 1) {
        deferred_.emplace_back([r = std::move(r), src]() mutable {
          std::this_thread::sleep_for(5ms);
          r->Reply(src, [](absl::Status) {});
        });
        return;
      }
      r->Reply(src, [this](absl::Status st) { sent_ok_ += st.ok(); });
    });
  }
  void TearDown() override {
    for (auto& th : deferred_) th.join();
  }

  std::shared_ptr<InprocFabric> fabric_ = std::make_shared<InprocFabric>();
  std::vector<std::unique_ptr<InprocTransport>> t_;
  std::vector<char> src_ = std::vector<char>(1 << 20);
  MemoryRegion src_region_;   // src_, registered with node 2
  std::vector<std::unique_ptr<testing::ScratchArena>> scratch_;   // one per transport
  absl::Status bad_reply_sent_;
  absl::Notification bad_reply_;
  std::vector<std::thread> deferred_;
  std::vector<std::unique_ptr<FetchResponder>> held_;  // touched on node 2's thread only
  std::atomic<int> sent_ok_{0};
  std::atomic<int> held_count_{0};
};

TEST_F(InprocTest, FetchCopiesTheRange) {
  auto dst = scratch_[0]->Take(1000);
  Completion c;
  t_[0]->Fetch(2, testing::EncodeRange({100, 1000, 0}), dst.All(), c.done());
  auto st = c.Wait();
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(st->ok()) << *st;
  EXPECT_EQ(std::memcmp(dst.data(), src_.data() + 100, 1000), 0);
  EXPECT_EQ(t_[0]->Stats().bytes_fetched, 1000u);
  for (int i = 0; i < 1000 && sent_ok_ == 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(sent_ok_, 1);
  EXPECT_EQ(t_[1]->Stats().bytes_served, 1000u);
}

TEST_F(InprocTest, DeferredReplyFailAndUnknownPeer) {
  auto dst = scratch_[0]->Take(64);
  Completion deferred, failed, unknown;
  t_[0]->Fetch(2, testing::EncodeRange({0, 64, 1}), dst.Slice(0, 64), deferred.done());
  t_[0]->Fetch(2, testing::EncodeRange({0, 64, 2}), dst.Slice(0, 64), failed.done());
  t_[0]->Fetch(9, "", dst.Slice(0, 64), unknown.done());
  EXPECT_TRUE(deferred.Wait()->ok());
  EXPECT_EQ(std::memcmp(dst.data(), src_.data(), 64), 0);
  auto st = failed.Wait();
  EXPECT_EQ(st->code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st->message(), "chunk 3 missing");
  EXPECT_EQ(unknown.Wait()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(t_[0]->AddPeer(4, "x4").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_[0]->AddPeer(4, "5").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(InprocTransport::Create(fabric_, 1).ok());  // id taken
}

TEST_F(InprocTest, RequestsFromUnregisteredNodesAreDropped) {
  t_[1]->RemovePeer(1);
  auto dst = scratch_[0]->Take(8);
  Completion c;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 0}), dst.Slice(0, 8), c.done());
  for (int i = 0; i < 1000 && t_[1]->Stats().dropped_requests == 0; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(t_[1]->Stats().dropped_requests, 1u);
  t_[0]->Shutdown();
  EXPECT_EQ(c.Wait(0ms)->code(), absl::StatusCode::kCancelled);
}

TEST_F(InprocTest, ReadAndControl) {
  auto region = t_[2]->RegisterMemory(MemoryKind::kHost, src_.data(), src_.size());
  ASSERT_TRUE(region.ok());
  auto dst = scratch_[0]->Take(4096);
  Completion read, oob, wrap, mismatch, badkey, control;
  t_[0]->Read(3, RemoteSlice{region->remote_key, 10, dst.size()}, dst.All(), read.done());
  EXPECT_TRUE(read.Wait()->ok());
  EXPECT_EQ(std::memcmp(dst.data(), src_.data() + 10, dst.size()), 0);
  // Checked against the remote key before anything is read.
  t_[0]->Read(3, RemoteSlice{region->remote_key, src_.size() - 1, 2}, dst.Slice(0, 2), oob.done());
  EXPECT_EQ(oob.Wait()->code(), absl::StatusCode::kOutOfRange);
  t_[0]->Read(3, RemoteSlice{region->remote_key, ~uint64_t{0} - 1, 4}, dst.Slice(0, 4), wrap.done());
  EXPECT_EQ(wrap.Wait()->code(), absl::StatusCode::kOutOfRange);
  t_[0]->Read(3, RemoteSlice{region->remote_key, 0, 8}, dst.Slice(0, 4), mismatch.done());
  EXPECT_EQ(mismatch.Wait()->code(), absl::StatusCode::kInvalidArgument);
  t_[0]->Read(3, RemoteSlice{"0", 0, 4}, dst.Slice(0, 4), badkey.done());
  EXPECT_EQ(badkey.Wait()->code(), absl::StatusCode::kInvalidArgument);

  absl::Notification got;
  std::string received;
  t_[2]->SetControlHandler([&](NodeId from, std::string_view bytes) {
    received = absl::StrCat(from, ":", std::string(bytes));
    got.Notify();
  });
  t_[0]->SendControl(3, "hello", control.done());
  EXPECT_TRUE(control.Wait()->ok());
  ASSERT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(received, "1:hello");
}

TEST_F(InprocTest, KillFailsOutstandingOpsAndRunsFailureHandlerOnce) {
  std::atomic<int> failures{0};
  absl::Notification failed;
  t_[0]->SetPeerFailureHandler([&](NodeId peer, const absl::Status& why) {
    EXPECT_EQ(peer, 2u);
    EXPECT_EQ(why.code(), absl::StatusCode::kUnavailable);
    if (failures.fetch_add(1) == 0) failed.Notify();
  });
  auto dst = scratch_[0]->Take(8);
  Completion hang;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 4}), dst.Slice(0, 8), hang.done());
  for (int i = 0; i < 1000 && t_[1]->Stats().dropped_requests == 0 && held_count_ == 0; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  t_[1]->Kill();
  EXPECT_FALSE(fabric_->IsAttached(2));
  auto st = hang.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  Completion later;
  t_[0]->Fetch(2, "", dst.Slice(0, 0), later.done());
  EXPECT_EQ(later.Wait()->code(), absl::StatusCode::kUnavailable);
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(failures.load(), 1);
  held_.clear();  // node 2's thread is gone; its held responders fail into the void
}

TEST_F(InprocTest, CancelFetchCompletesAtOnceAndALateReplyCopiesNothing) {
  auto dst = scratch_[0]->Take(64);
  std::memset(dst.data(), 'x', 64);
  Completion fetched;
  const FetchId id = t_[0]->Fetch(2, testing::EncodeRange({0, 64, 4}), dst.Slice(0, 64), fetched.done());
  EXPECT_NE(id, 0u);
  for (int i = 0; i < 10000 && held_count_ == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(held_count_, 1);
  t_[0]->CancelFetch(id);
  auto st = fetched.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kCancelled) << *st;
  // The server answers after the cancel: nothing lands, and its `sent` hears so.
  Completion sent;
  held_[0]->Reply(src_region_.Slice(0, 64), sent.done());
  auto sent_st = sent.Wait();
  ASSERT_TRUE(sent_st.has_value());
  EXPECT_FALSE(sent_st->ok());
  EXPECT_EQ(std::string(dst.data(), dst.size()), std::string(64, 'x'));
  t_[0]->CancelFetch(id);  // completed: no-op
  t_[0]->CancelFetch(0);
  Completion again;
  t_[0]->Fetch(2, testing::EncodeRange({0, 64, 0}), dst.Slice(0, 64), again.done());
  EXPECT_TRUE(again.Wait()->ok());
  EXPECT_EQ(std::memcmp(dst.data(), src_.data(), 64), 0);
}

TEST_F(InprocTest, ResetPeerFailsOutstandingOpsAndKeepsThePeer) {
  auto dst = scratch_[0]->Take(8);
  Completion hang;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 4}), dst.Slice(0, 8), hang.done());
  for (int i = 0; i < 10000 && held_count_ == 0; ++i) std::this_thread::sleep_for(1ms);
  t_[0]->ResetPeer(2);
  auto st = hang.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
  EXPECT_TRUE(t_[0]->HasPeer(2));
  Completion later;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 0}), dst.Slice(0, 8), later.done());
  EXPECT_TRUE(later.Wait()->ok());
}

TEST_F(InprocTest, ManyConcurrentFetches) {
  constexpr int kOps = 2000;
  std::vector<testing::ScratchArena::Buffer> dst(kOps);
  std::vector<Completion> done(kOps);
  for (int i = 0; i < kOps; ++i) {
    size_t len = (i * 37) % 5000;
    const int from = i % 2 == 0 ? 0 : 2;
    dst[i] = scratch_[from]->Take(len);
    t_[from]->Fetch(2, testing::EncodeRange({static_cast<uint64_t>(i), len, 0}), dst[i].All(), done[i].done());
  }
  for (int i = 0; i < kOps; ++i) {
    auto st = done[i].Wait();
    ASSERT_TRUE(st.has_value() && st->ok());
    if (dst[i].size() > 0) {
      ASSERT_EQ(std::memcmp(dst[i].data(), src_.data() + i, dst[i].size()), 0);
    }
  }
}

TEST_F(InprocTest, FetchIntoARangeOutsideItsRegionFailsAndSendsNothing) {
  const LocalSlice whole = scratch_[0]->region().Slice(0, 8 << 20);
  Completion past_end, wraps, unknown, no_region;
  t_[0]->Fetch(2, testing::EncodeRange({0, 16, 0}), LocalSlice{whole.region, whole.length - 8, 16}, past_end.done());
  t_[0]->Fetch(2, testing::EncodeRange({0, 16, 0}), LocalSlice{whole.region, ~uint64_t{0} - 7, 16}, wraps.done());
  t_[0]->Fetch(2, testing::EncodeRange({0, 16, 0}), LocalSlice{whole.region + 100, 0, 16}, unknown.done());
  t_[0]->Fetch(2, testing::EncodeRange({0, 16, 0}), LocalSlice{kNoRegion, 0, 16}, no_region.done());
  auto st = past_end.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kOutOfRange) << *st;
  EXPECT_NE(st->message().find("outside the region"), std::string::npos) << *st;
  EXPECT_EQ(wraps.Wait()->code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(unknown.Wait()->code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(no_region.Wait()->code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_[1]->Stats().bytes_served, 0u);   // the server never saw a request
  EXPECT_EQ(sent_ok_, 0);
}

TEST_F(InprocTest, ReplyFromOutsideTheServersRegionFailsBothSides) {
  auto dst = scratch_[0]->Take(16);
  Completion c;
  t_[0]->Fetch(2, testing::EncodeRange({0, 16, 5}), dst.All(), c.done());
  auto st = c.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kInternal) << *st;
  ASSERT_TRUE(bad_reply_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(bad_reply_sent_.code(), absl::StatusCode::kOutOfRange) << bad_reply_sent_;
}

TEST_F(InprocTest, RegisterMemoryRefusesKindsOtherThanHost) {
  std::vector<char> bytes(64);
  auto cuda = t_[0]->RegisterMemory(MemoryKind::kCudaDevice, bytes.data(), bytes.size());
  ASSERT_FALSE(cuda.ok());
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(cuda.status().message().find("cuda-device"), std::string::npos) << cuda.status();
  EXPECT_EQ(t_[0]->RegisterMemory(MemoryKind::kHost, nullptr, 64).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_[0]->RegisterMemory(MemoryKind::kHost, bytes.data(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::dataplane
