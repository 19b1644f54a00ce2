#include "dataplane/store/chunk_progress.h"

#include <algorithm>

namespace ferry::dataplane {

ChunkProgress::ChunkProgress(uint64_t size, uint32_t chunk_size)
    : size_(size),
      chunk_size_(chunk_size == 0 ? 1 : chunk_size),
      num_chunks_(static_cast<uint32_t>((size + chunk_size_ - 1) / chunk_size_)),
      bits_((num_chunks_ + 63) / 64, 0) {}

std::pair<uint64_t, uint64_t> ChunkProgress::ChunkRange(uint32_t k) const {
  uint64_t first = static_cast<uint64_t>(k) * chunk_size_;
  uint64_t len = std::min<uint64_t>(chunk_size_, size_ - std::min(size_, first));
  return {first, len};
}

bool ChunkProgress::Has(uint32_t k) const {
  if (k >= num_chunks_) return false;
  return (bits_[k / 64] >> (k % 64)) & 1;
}

bool ChunkProgress::MarkLanded(uint32_t k) {
  if (k >= num_chunks_ || Has(k)) return false;
  bits_[k / 64] |= uint64_t{1} << (k % 64);
  ++landed_;
  while (prefix_ < num_chunks_ && Has(prefix_)) ++prefix_;
  return true;
}

void ChunkProgress::MarkAll() {
  for (uint32_t k = 0; k < num_chunks_; ++k) bits_[k / 64] |= uint64_t{1} << (k % 64);
  landed_ = prefix_ = num_chunks_;
}

uint64_t ChunkProgress::landed_bytes() const {
  if (complete()) return size_;
  uint64_t bytes = 0;
  for (uint32_t k = 0; k < num_chunks_; ++k) {
    if (Has(k)) bytes += ChunkRange(k).second;
  }
  return bytes;
}

std::optional<uint32_t> ChunkProgress::NextMissing(uint32_t from) const {
  for (uint32_t k = std::max(from, prefix_); k < num_chunks_; ++k) {
    if (!Has(k)) return k;
  }
  return std::nullopt;
}

}  // namespace ferry::dataplane
