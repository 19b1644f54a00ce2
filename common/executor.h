// An executor that owns every thread it runs: tasks run on worker threads started on demand
// up to a fixed maximum, and Shutdown joins them all. Nothing it starts is ever detached, so
// whoever owns the executor knows that no task is still running once Shutdown returns.
//
// Threading: Submit and Shutdown may be called from any thread, also from a task (a task
// calling Shutdown must not be the one Shutdown waits for: Shutdown from a task is refused).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ferry {

class Executor {
 public:
  // `name` appears in errors; at most `max_threads` (>= 1) tasks run at once.
  Executor(std::string name, size_t max_threads);
  ~Executor();   // Shutdown()
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Runs `task` on a worker: an idle one, or a new one while fewer than max_threads exist.
  // RESOURCE_EXHAUSTED (naming the executor and its limit) when max_threads tasks are running
  // already; FAILED_PRECONDITION after Shutdown. Never blocks on other tasks.
  [[nodiscard]] absl::Status Submit(absl::AnyInvocable<void()> task);

  // Refuses new tasks, waits for the running ones to return and joins every worker.
  // Idempotent. Blocks; the caller must make running tasks end (cancel what they wait on).
  void Shutdown();

  size_t running() const;
  size_t threads() const;

 private:
  void Work();

  const std::string name_;
  const size_t max_threads_;
  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);   // at most idle_ long
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;       // workers waiting for a task
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;    // tasks being run
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread::id> ids_ ABSL_GUARDED_BY(mu_);   // workers' ids (Shutdown from a task)
};

}  // namespace ferry
