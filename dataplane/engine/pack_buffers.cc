#include "dataplane/engine/pack_buffers.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ferry::dataplane {

PackBuffers::PackBuffers(const MemoryRegion& region, size_t slot_bytes, size_t slots)
    : base_(static_cast<uint8_t*>(region.base)), region_(region.id), slot_bytes_(slot_bytes), slots_(slots) {
  absl::MutexLock lock(&mu_);
  for (size_t i = slots; i > 0; --i) free_.push_back(static_cast<Slot>(i - 1));
}

PackBuffers::~PackBuffers() {
  std::deque<Ready> waiters;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(waiters_);
  }
}

std::optional<PackBuffers::Slot> PackBuffers::Acquire(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !free_.empty(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(&available), deadline)) return std::nullopt;
  Slot slot = free_.back();
  free_.pop_back();
  return slot;
}

void PackBuffers::AcquireAsync(Ready ready) {
  std::optional<Slot> slot;
  {
    absl::MutexLock lock(&mu_);
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else if (waiters_.size() < kMaxAsyncWaiters) {
      waiters_.push_back(std::move(ready));
      return;
    }
  }
  if (slot) {
    ready(*slot);
  } else {
    ready(absl::ResourceExhaustedError(
        absl::StrCat("all ", slots_, " pack buffers are busy and ", kMaxAsyncWaiters, " requests wait for one")));
  }
}

void PackBuffers::Release(Slot slot) {
  Ready next;
  {
    absl::MutexLock lock(&mu_);
    if (waiters_.empty()) {
      free_.push_back(slot);
      return;
    }
    next = std::move(waiters_.front());
    waiters_.pop_front();
  }
  next(slot);
}

}  // namespace ferry::dataplane
