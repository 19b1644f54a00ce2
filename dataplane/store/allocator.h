// Best-fit range allocator with coalescing, over offsets [0, capacity). Pure logic: no
// memory is touched. Not thread-safe (the ObjectStore serialises calls).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "absl/status/statusor.h"

namespace ferry::dataplane {

class Allocator {
 public:
  // `alignment` must be a power of two; every returned offset and every block length is a
  // multiple of it.
  explicit Allocator(uint64_t capacity, uint64_t alignment = 64);

  // Returns the offset of a block of at least `size` bytes (size 0 gets a minimal block, so
  // every object has a distinct offset). RESOURCE_EXHAUSTED if no free block is large enough.
  absl::StatusOr<uint64_t> Allocate(uint64_t size);
  // Frees the block at `offset`. NOT_FOUND if no block starts there (double free).
  absl::Status Free(uint64_t offset);

  uint64_t capacity() const { return capacity_; }
  uint64_t used() const { return used_; }
  uint64_t free_bytes() const { return capacity_ - used_; }
  // Largest block Allocate could return now.
  uint64_t largest_free() const;
  size_t allocated_blocks() const { return allocated_.size(); }
  // Rounds `size` up to what a block of that request occupies.
  uint64_t BlockSize(uint64_t size) const;

 private:
  void InsertFree(uint64_t offset, uint64_t length);
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  uint64_t capacity_;
  uint64_t alignment_;
  uint64_t used_ = 0;
  std::map<uint64_t, uint64_t> free_by_offset_;         // offset -> length
  std::set<std::pair<uint64_t, uint64_t>> free_by_size_;  // (length, offset)
  std::map<uint64_t, uint64_t> allocated_;              // offset -> length
};

}  // namespace ferry::dataplane
