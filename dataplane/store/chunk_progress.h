// Which chunks of an object have landed: a bitmap plus the contiguous prefix. A partial copy
// serves the chunks it has. Pure logic; not thread-safe (ObjectStore guards it).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace ferry::dataplane {

class ChunkProgress {
 public:
  // An object of `size` bytes in chunks of `chunk_size` (> 0) bytes; the last may be short.
  ChunkProgress(uint64_t size, uint32_t chunk_size);

  uint64_t size() const { return size_; }
  uint32_t chunk_size() const { return chunk_size_; }
  uint32_t num_chunks() const { return num_chunks_; }
  // Byte range [first, first+second) of chunk k (k < num_chunks()).
  std::pair<uint64_t, uint64_t> ChunkRange(uint32_t k) const;

  bool Has(uint32_t k) const;
  // Marks chunk k landed; returns true if it was not before. k >= num_chunks() is ignored.
  bool MarkLanded(uint32_t k);
  void MarkAll();

  // Number of chunks 0..prefix()-1 that have all landed.
  uint32_t prefix() const { return prefix_; }
  uint32_t landed() const { return landed_; }
  bool complete() const { return landed_ == num_chunks_; }
  uint64_t landed_bytes() const;
  // First chunk >= from that has not landed.
  std::optional<uint32_t> NextMissing(uint32_t from) const;

 private:
  uint64_t size_;
  uint32_t chunk_size_;
  uint32_t num_chunks_;
  uint32_t prefix_ = 0;
  uint32_t landed_ = 0;
  std::vector<uint64_t> bits_;
};

}  // namespace ferry::dataplane
