#include "dataplane/sidecar/report_queue.h"

#include <utility>

#include "absl/time/clock.h"

namespace ferry::dataplane {

ReportQueue::ReportQueue(SendFn send) : send_(std::move(send)), thread_([this] { Run(); }) {}

ReportQueue::~ReportQueue() { Stop(); }

void ReportQueue::Push(proto::ReportTransferRequest req) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    queue_.push_back(std::move(req));
    ++pushed_;
  }
  cv_.notify_all();
}

bool ReportQueue::Flush(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = pushed_;
  cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return sent_ >= target || stop_; });
  return sent_ >= target;
}

void ReportQueue::Stop(absl::Duration drain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) drain_until_ = absl::Now() + drain;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ReportQueue::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_ && absl::Now() > drain_until_) queue_.clear();
    if (queue_.empty()) return;  // stopped, and drained or out of time
    proto::ReportTransferRequest req = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    send_(req);
    lock.lock();
    ++sent_;
    cv_.notify_all();
  }
}

}  // namespace ferry::dataplane
