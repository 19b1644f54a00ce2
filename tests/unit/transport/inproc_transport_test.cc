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
      const char* src = src_.data() + h->offset;
      if (h->verb == 1) {
        deferred_.emplace_back([r = std::move(r), src, len = h->length]() mutable {
          std::this_thread::sleep_for(5ms);
          r->Reply(src, len, [](absl::Status) {});
        });
        return;
      }
      r->Reply(src, h->length, [this](absl::Status st) { sent_ok_ += st.ok(); });
    });
  }
  void TearDown() override {
    for (auto& th : deferred_) th.join();
  }

  std::shared_ptr<InprocFabric> fabric_ = std::make_shared<InprocFabric>();
  std::vector<std::unique_ptr<InprocTransport>> t_;
  std::vector<char> src_ = std::vector<char>(1 << 20);
  std::vector<std::thread> deferred_;
  std::vector<std::unique_ptr<FetchResponder>> held_;  // touched on node 2's thread only
  std::atomic<int> sent_ok_{0};
  std::atomic<int> held_count_{0};
};

TEST_F(InprocTest, FetchCopiesTheRange) {
  std::vector<char> dst(1000);
  Completion c;
  t_[0]->Fetch(2, testing::EncodeRange({100, 1000, 0}), dst.data(), dst.size(), c.done());
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
  std::vector<char> dst(64);
  Completion deferred, failed, unknown;
  t_[0]->Fetch(2, testing::EncodeRange({0, 64, 1}), dst.data(), 64, deferred.done());
  t_[0]->Fetch(2, testing::EncodeRange({0, 64, 2}), dst.data(), 64, failed.done());
  t_[0]->Fetch(9, "", dst.data(), 64, unknown.done());
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
  std::vector<char> dst(8);
  Completion c;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 0}), dst.data(), 8, c.done());
  for (int i = 0; i < 1000 && t_[1]->Stats().dropped_requests == 0; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(t_[1]->Stats().dropped_requests, 1u);
  t_[0]->Shutdown();
  EXPECT_EQ(c.Wait(0ms)->code(), absl::StatusCode::kCancelled);
}

TEST_F(InprocTest, ReadAndControl) {
  auto region = t_[2]->RegisterMemory(src_.data(), src_.size());
  ASSERT_TRUE(region.ok());
  std::vector<char> dst(4096);
  Completion read, oob, control;
  t_[0]->Read(3, reinterpret_cast<uint64_t>(src_.data()) + 10, region->remote_key, dst.data(),
              dst.size(), read.done());
  EXPECT_TRUE(read.Wait()->ok());
  EXPECT_EQ(std::memcmp(dst.data(), src_.data() + 10, dst.size()), 0);
  t_[0]->Read(3, reinterpret_cast<uint64_t>(src_.data()) + src_.size() - 1, region->remote_key,
              dst.data(), 2, oob.done());
  EXPECT_EQ(oob.Wait()->code(), absl::StatusCode::kOutOfRange);

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
  std::vector<char> dst(8);
  Completion hang;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 4}), dst.data(), 8, hang.done());
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
  t_[0]->Fetch(2, "", dst.data(), 0, later.done());
  EXPECT_EQ(later.Wait()->code(), absl::StatusCode::kUnavailable);
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(failures.load(), 1);
  held_.clear();  // node 2's thread is gone; its held responders fail into the void
}

TEST_F(InprocTest, CancelFetchCompletesAtOnceAndALateReplyCopiesNothing) {
  std::vector<char> dst(64, 'x');
  Completion fetched;
  const FetchId id = t_[0]->Fetch(2, testing::EncodeRange({0, 64, 4}), dst.data(), 64, fetched.done());
  EXPECT_NE(id, 0u);
  for (int i = 0; i < 10000 && held_count_ == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(held_count_, 1);
  t_[0]->CancelFetch(id);
  auto st = fetched.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kCancelled) << *st;
  // The server answers after the cancel: nothing lands, and its `sent` hears so.
  Completion sent;
  held_[0]->Reply(src_.data(), 64, sent.done());
  auto sent_st = sent.Wait();
  ASSERT_TRUE(sent_st.has_value());
  EXPECT_FALSE(sent_st->ok());
  EXPECT_EQ(std::string(dst.begin(), dst.end()), std::string(64, 'x'));
  t_[0]->CancelFetch(id);  // completed: no-op
  t_[0]->CancelFetch(0);
  Completion again;
  t_[0]->Fetch(2, testing::EncodeRange({0, 64, 0}), dst.data(), 64, again.done());
  EXPECT_TRUE(again.Wait()->ok());
  EXPECT_EQ(std::memcmp(dst.data(), src_.data(), 64), 0);
}

TEST_F(InprocTest, ResetPeerFailsOutstandingOpsAndKeepsThePeer) {
  std::vector<char> dst(8);
  Completion hang;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 4}), dst.data(), 8, hang.done());
  for (int i = 0; i < 10000 && held_count_ == 0; ++i) std::this_thread::sleep_for(1ms);
  t_[0]->ResetPeer(2);
  auto st = hang.Wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
  EXPECT_TRUE(t_[0]->HasPeer(2));
  Completion later;
  t_[0]->Fetch(2, testing::EncodeRange({0, 8, 0}), dst.data(), 8, later.done());
  EXPECT_TRUE(later.Wait()->ok());
}

TEST_F(InprocTest, ManyConcurrentFetches) {
  constexpr int kOps = 2000;
  std::vector<std::vector<char>> dst(kOps);
  std::vector<Completion> done(kOps);
  for (int i = 0; i < kOps; ++i) {
    size_t len = (i * 37) % 5000;
    dst[i].resize(len);
    t_[i % 2 == 0 ? 0 : 2]->Fetch(2, testing::EncodeRange({static_cast<uint64_t>(i), len, 0}),
                                  dst[i].data(), len, done[i].done());
  }
  for (int i = 0; i < kOps; ++i) {
    auto st = done[i].Wait();
    ASSERT_TRUE(st.has_value() && st->ok());
    if (!dst[i].empty()) {
      ASSERT_EQ(std::memcmp(dst[i].data(), src_.data() + i, dst[i].size()), 0);
    }
  }
}

}  // namespace
}  // namespace ferry::dataplane
