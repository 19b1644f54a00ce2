// A pool of equal buffers ("slots") in one memory region registered with the transport at
// start-up, for pack fetches (chunk_request.h): a server gathers the objects of a pack into a
// slot and replies from it; a receiver lands a pack in a slot and copies the objects out into
// the arena. No registration or allocation happens on the transfer path.
//
// Threading: every method is thread-safe. AcquireAsync callbacks run on the thread that frees
// the slot (Release) or, when one is free, inside AcquireAsync itself; they must not block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/transport/memory_region.h"

namespace ferry::dataplane {

class PackBuffers {
 public:
  using Slot = uint32_t;
  // Called with a slot (OK) or with why none will come (RESOURCE_EXHAUSTED: too many waiters).
  using Ready = absl::AnyInvocable<void(absl::StatusOr<Slot>)>;
  static constexpr size_t kMaxAsyncWaiters = 1024;

  // `region` is registered memory of at least slots * slot_bytes bytes (base: its address);
  // it must outlive the pool.
  PackBuffers(const MemoryRegion& region, size_t slot_bytes, size_t slots);
  ~PackBuffers();   // waiting AcquireAsync callbacks are destroyed unrun

  size_t slot_bytes() const { return slot_bytes_; }
  size_t slots() const { return slots_; }

  // A free slot, waiting for one until `deadline` (nullopt then).
  std::optional<Slot> Acquire(absl::Time deadline);
  // Calls `ready` with a slot as soon as one is free (waiters are served in order).
  void AcquireAsync(Ready ready);
  // Frees `slot` (hands it to the first waiter, if any).
  void Release(Slot slot);

  uint8_t* data(Slot slot) const { return base_ + size_t{slot} * slot_bytes_; }
  LocalSlice slice(Slot slot, uint64_t length) const { return LocalSlice{region_, size_t{slot} * slot_bytes_, length}; }

 private:
  uint8_t* const base_;
  const RegionId region_;
  const size_t slot_bytes_;
  const size_t slots_;
  absl::Mutex mu_;
  std::vector<Slot> free_ ABSL_GUARDED_BY(mu_);
  std::deque<Ready> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::dataplane
