// ReportQueue: order, Flush, and Stop (drain within the bound, then drop).
#include "dataplane/sidecar/report_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"

namespace ferry::dataplane {
namespace {

proto::ReportTransferRequest Req(uint64_t sender) {
  proto::ReportTransferRequest r;
  r.set_sender(sender);
  return r;
}

TEST(ReportQueue, SendsInPushOrderAndFlushWaitsForEarlierReports) {
  std::mutex mu;
  std::vector<uint64_t> sent;
  ReportQueue q([&](const proto::ReportTransferRequest& r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow coordinator
    std::lock_guard<std::mutex> lock(mu);
    sent.push_back(r.sender());
  });
  for (uint64_t i = 1; i <= 20; ++i) q.Push(Req(i));
  ASSERT_TRUE(q.Flush(absl::Now() + absl::Seconds(10)));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(sent.size(), 20u);  // Flush returned only after all 20 were sent
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(sent[i], i + 1);
}

TEST(ReportQueue, FlushTimesOutWhileASendHangs) {
  std::atomic<bool> release{false};
  ReportQueue q([&](const proto::ReportTransferRequest&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  q.Push(Req(1));
  EXPECT_FALSE(q.Flush(absl::Now() + absl::Milliseconds(50)));
  release = true;
  EXPECT_TRUE(q.Flush(absl::Now() + absl::Seconds(10)));
}

TEST(ReportQueue, StopSendsWhatIsQueuedThenDropsLaterPushes) {
  std::atomic<int> sent{0};
  ReportQueue q([&](const proto::ReportTransferRequest&) { ++sent; });
  for (int i = 0; i < 5; ++i) q.Push(Req(static_cast<uint64_t>(i)));
  q.Stop();
  EXPECT_EQ(sent.load(), 5);
  q.Push(Req(99));  // dropped: not queued, so Flush has nothing to wait for
  EXPECT_TRUE(q.Flush(absl::Now() + absl::Milliseconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(sent.load(), 5);
}

TEST(ReportQueue, StopGivesUpOnABacklogAfterTheDrainBound) {
  std::atomic<int> sent{0};
  ReportQueue q([&](const proto::ReportTransferRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // coordinator unreachable
    ++sent;
  });
  for (int i = 0; i < 100; ++i) q.Push(Req(static_cast<uint64_t>(i)));
  const auto t0 = std::chrono::steady_clock::now();
  q.Stop(absl::Milliseconds(100));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(sent.load(), 100);
  EXPECT_LT(waited, std::chrono::seconds(2));  // not 100 x 20 ms
}

}  // namespace
}  // namespace ferry::dataplane
