#include "dataplane/ucx/work_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ferry::dataplane::ucx {

absl::StatusOr<std::shared_ptr<WorkQueue>> WorkQueue::Create() {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  return std::shared_ptr<WorkQueue>(new WorkQueue(fd));
}

WorkQueue::~WorkQueue() { close(fd_); }

bool WorkQueue::Push(Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  // A full counter (EAGAIN) is still readable, so the wakeup is not lost.
  [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof(one));
  return true;
}

std::deque<WorkQueue::Task> WorkQueue::TakeAll() {
  std::deque<Task> out;
  absl::MutexLock lock(&mu_);
  out.swap(tasks_);
  return out;
}

void WorkQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void WorkQueue::ClearWakeup() {
  uint64_t value = 0;
  [[maybe_unused]] ssize_t n = read(fd_, &value, sizeof(value));
}

}  // namespace ferry::dataplane::ucx
