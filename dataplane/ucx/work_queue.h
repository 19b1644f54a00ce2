// A closable multi-producer task queue with an eventfd that becomes readable when a task is
// pushed (internal to the UCX transport). Shared (shared_ptr) between the transport and the
// FetchResponders it hands out, so a responder that outlives the transport pushes into a
// closed queue instead of a dangling pointer.
#pragma once

#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace ferry::dataplane::ucx {

class WorkQueue {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // INTERNAL (with strerror) if the eventfd cannot be created.
  static absl::StatusOr<std::shared_ptr<WorkQueue>> Create();
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Thread-safe. Queues `task` and makes fd() readable. Returns false (and destroys the task
  // without running it) once Close() was called.
  bool Push(Task task);
  // Thread-safe. Everything queued so far, in push order.
  std::deque<Task> TakeAll();
  // Thread-safe. Later pushes fail. Tasks already queued stay for TakeAll().
  void Close();
  // Readable while a push has not been consumed by ClearWakeup().
  int fd() const { return fd_; }
  // Resets fd() to not readable.
  void ClearWakeup();

 private:
  explicit WorkQueue(int fd) : fd_(fd) {}

  const int fd_;
  absl::Mutex mu_;
  // Invariant: once closed_ is true, tasks_ only shrinks.
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::dataplane::ucx
