#include "dataplane/sidecar/report_queue.h"

#include <utility>

#include "absl/time/clock.h"

namespace ferry::dataplane {

ReportQueue::ReportQueue(SendFn send) : send_(std::move(send)), thread_([this] { Run(); }) {}

ReportQueue::~ReportQueue() { Stop(); }

void ReportQueue::Push(proto::ReportTransferRequest req) {
  absl::MutexLock lock(&mu_);
  if (stop_) return;
  queue_.push_back(std::move(req));
  ++pushed_;
}

bool ReportQueue::Flush(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = pushed_;
  auto done = [this, target] {
    mu_.AssertHeld();
    return sent_ >= target || stop_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  return sent_ >= target;
}

void ReportQueue::Stop(absl::Duration drain) {
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) drain_until_ = absl::Now() + drain;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ReportQueue::Run() {
  mu_.Lock();
  auto ready = [this] {
    mu_.AssertHeld();
    return stop_ || !queue_.empty();
  };
  while (true) {
    mu_.Await(absl::Condition(&ready));
    if (stop_ && absl::Now() > drain_until_) queue_.clear();
    if (queue_.empty()) break;  // stopped, and drained or out of time
    proto::ReportTransferRequest req = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    send_(req);
    mu_.Lock();
    ++sent_;
  }
  mu_.Unlock();
}

}  // namespace ferry::dataplane
