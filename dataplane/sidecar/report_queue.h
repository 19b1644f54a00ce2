// Sends a node's transfer reports to the coordinator in order, on one background thread.
//
// A Get used to wait for its ReportTransfer round trip before answering the client; on a
// busy host that was 0.4-0.7 ms of every pull (measured, docs/benchmarks.md). Reports now
// leave in the background, in the order they were pushed. Anything that must not overtake
// them (a later coordinator call about objects from this node) calls Flush first, so the
// coordinator still sees this node's reports and requests in the order the node made them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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
  absl::Mutex mu_;
  // Reports pushed and not yet taken by the thread; pushed_ - sent_ = queued + the one
  // being sent.
  std::deque<proto::ReportTransferRequest> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t pushed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;   // owned, joined by Stop
};

}  // namespace ferry::dataplane
