#include "dataplane/store/allocator.h"

#include "absl/strings/str_cat.h"

namespace ferry::dataplane {

Allocator::Allocator(uint64_t capacity, uint64_t alignment)
    : capacity_(capacity / alignment * alignment), alignment_(alignment) {
  if (capacity_ > 0) InsertFree(0, capacity_);
}

uint64_t Allocator::BlockSize(uint64_t size) const {
  if (size == 0) return alignment_;
  return (size + alignment_ - 1) / alignment_ * alignment_;
}

uint64_t Allocator::largest_free() const {
  return free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
}

void Allocator::InsertFree(uint64_t offset, uint64_t length) {
  free_by_offset_.emplace(offset, length);
  free_by_size_.emplace(length, offset);
}

void Allocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  free_by_size_.erase({it->second, it->first});
  free_by_offset_.erase(it);
}

absl::StatusOr<uint64_t> Allocator::Allocate(uint64_t size) {
  if (size > capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request of ", size, " bytes exceeds the arena capacity of ", capacity_));
  }
  const uint64_t need = BlockSize(size);
  auto fit = free_by_size_.lower_bound({need, 0});
  if (fit == free_by_size_.end()) {
    return absl::ResourceExhaustedError(absl::StrCat("no free block of ", need, " bytes (",
                                                     free_bytes(), " free, largest block ",
                                                     largest_free(), ")"));
  }
  const uint64_t offset = fit->second;
  const uint64_t length = fit->first;
  EraseFree(free_by_offset_.find(offset));
  if (length > need) InsertFree(offset + need, length - need);
  allocated_.emplace(offset, need);
  used_ += need;
  return offset;
}

absl::Status Allocator::Free(uint64_t offset) {
  auto it = allocated_.find(offset);
  if (it == allocated_.end()) {
    return absl::NotFoundError(absl::StrCat("no allocated block at offset ", offset));
  }
  uint64_t start = offset;
  uint64_t length = it->second;
  used_ -= length;
  allocated_.erase(it);
  auto next = free_by_offset_.lower_bound(start);
  if (next != free_by_offset_.end() && next->first == start + length) {
    length += next->second;
    auto after = std::next(next);
    EraseFree(next);
    next = after;
  }
  if (next != free_by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      length += prev->second;
      EraseFree(prev);
    }
  }
  InsertFree(start, length);
  return absl::OkStatus();
}

}  // namespace ferry::dataplane
