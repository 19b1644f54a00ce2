#include "sdk/async_get.h"

#include <algorithm>
#include <utility>

namespace ferry {

PendingGet::PendingGet(ObjectName name) : name_(std::move(name)) {}

PendingGet::PendingGet(ObjectName name, absl::Status error) : name_(std::move(name)) {
  absl::MutexLock lock(&mu_);
  done_ = true;
  early_ = std::move(error);
}

void PendingGet::Complete(grpc::Status status) {
  absl::MutexLock lock(&mu_);
  rpc_status_ = std::move(status);
  done_ = true;
  done_cv_.SignalAll();
  // Under mu_: a WaitAny that is returning first removes itself here, so each waiter is
  // still alive while we signal it.
  for (AnyWaiter* waiter : waiters_) {
    absl::MutexLock waiter_lock(&waiter->mu);
    waiter->fired = true;
    waiter->cv.Signal();
  }
  waiters_.clear();
}

bool PendingGet::Done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

bool PendingGet::WaitDone(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  while (!done_) {
    if (done_cv_.WaitWithDeadline(&mu_, deadline)) break;  // true: the deadline passed
  }
  return done_;
}

void PendingGet::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  // Harmless on a finished call; before the call starts it makes gRPC cancel it at start.
  ctx_.TryCancel();
}

std::optional<PendingGet::Outcome> PendingGet::Take(bool* already_taken) {
  absl::MutexLock lock(&mu_);
  *already_taken = taken_;
  if (!done_ || taken_) return std::nullopt;
  taken_ = true;
  Outcome outcome;
  outcome.early = early_;
  outcome.rpc = rpc_status_;
  outcome.cancelled = cancelled();
  return outcome;
}

bool PendingGet::AddWaiter(AnyWaiter* waiter) {
  absl::MutexLock lock(&mu_);
  if (done_) return true;
  waiters_.push_back(waiter);
  return false;
}

void PendingGet::RemoveWaiter(AnyWaiter* waiter) {
  absl::MutexLock lock(&mu_);
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), waiter), waiters_.end());
}

std::optional<uint64_t> GetRegistry::Register(const std::shared_ptr<PendingGet>& get) {
  absl::MutexLock lock(&mu_);
  if (closed_) return std::nullopt;
  const uint64_t id = next_id_++;
  in_flight_.emplace(id, get);
  return id;
}

void GetRegistry::Unregister(uint64_t id) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(id);
  if (in_flight_.empty()) drained_.SignalAll();
}

void GetRegistry::CloseAndDrain() {
  std::vector<std::shared_ptr<PendingGet>> running;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (auto& [id, weak] : in_flight_) {
      if (std::shared_ptr<PendingGet> get = weak.lock()) running.push_back(std::move(get));
    }
  }
  // Outside the lock: TryCancel may run the callback inline, which calls Unregister.
  for (const std::shared_ptr<PendingGet>& get : running) get->Cancel();
  running.clear();
  absl::MutexLock lock(&mu_);
  while (!in_flight_.empty()) drained_.Wait(&mu_);
}

}  // namespace ferry
