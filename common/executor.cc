#include "common/executor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ferry {

Executor::Executor(std::string name, size_t max_threads)
    : name_(std::move(name)), max_threads_(std::max<size_t>(max_threads, 1)) {}

Executor::~Executor() { Shutdown(); }

absl::Status Executor::Submit(absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::FailedPreconditionError(absl::StrCat(name_, ": shutting down"));
  // Each queued task has an idle worker that will take it: a task never waits behind others.
  if (queue_.size() < idle_) {
    queue_.push_back(std::move(task));
    return absl::OkStatus();
  }
  if (workers_.size() >= max_threads_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name_, ": ", max_threads_, " tasks are running already (the limit)"));
  }
  queue_.push_back(std::move(task));
  ++idle_;   // the new worker counts as idle until it takes the task
  workers_.emplace_back([this] { Work(); });
  ids_.push_back(workers_.back().get_id());
  return absl::OkStatus();
}

void Executor::Work() {
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(+[](Executor* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return e->stopping_ || !e->queue_.empty();
    }, this));
    if (queue_.empty()) return;   // stopping
    absl::AnyInvocable<void()> task = std::move(queue_.front());
    queue_.pop_front();
    --idle_;
    ++running_;
    mu_.Unlock();
    task();
    task = nullptr;   // destroy what it captured outside the lock
    mu_.Lock();
    --running_;
    ++idle_;
  }
}

void Executor::Shutdown() {
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    if (std::find(ids_.begin(), ids_.end(), std::this_thread::get_id()) != ids_.end()) return;
    stopping_ = true;
    // Tasks queued for an idle worker still run: Submit promised them a thread.
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
}

size_t Executor::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

size_t Executor::threads() const {
  absl::MutexLock lock(&mu_);
  return workers_.size();
}

}  // namespace ferry
