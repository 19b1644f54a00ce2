// Sends a node's transfer reports to the coordinator in order, on one background thread.
//
// A Get used to wait for its ReportTransfer round trip before answering the client; on a
// busy host that was 0.4-0.7 ms of every pull (measured, docs/benchmarks.md). Reports now
// leave in the background, in the order they were pushed. Anything that must not overtake
// them (a later coordinator call about objects from this node) calls Flush first, so the
// coordinator still sees this node's reports and requests in the order the node made them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

class ReportQueue {
 public:
  // `send` makes one (bounded) ReportTransfer call; it runs on the queue's thread.
  using SendFn = std::function<void(const proto::ReportTransferRequest&)>;
  explicit ReportQueue(SendFn send);
  ~ReportQueue();  // Stop()
  ReportQueue(const ReportQueue&) = delete;
  ReportQueue& operator=(const ReportQueue&) = delete;

  void Push(proto::ReportTransferRequest req);
  // Waits until every report pushed before this call has been sent (or `deadline` passes,
  // or the queue stopped). True if they were all sent.
  bool Flush(absl::Time deadline);
  // Sends what is queued for up to `drain` more, then stops the thread. Reports pushed
  // afterwards, or still queued when `drain` runs out, are dropped.
  void Stop(absl::Duration drain = absl::Seconds(2));

 private:
  void Run();

  SendFn send_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<proto::ReportTransferRequest> queue_;
  uint64_t pushed_ = 0;
  uint64_t sent_ = 0;
  bool stop_ = false;
  absl::Time drain_until_ = absl::InfiniteFuture();
  std::thread thread_;
};

}  // namespace ferry::dataplane
