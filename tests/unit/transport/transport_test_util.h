// Helpers shared by the transport tests (inproc, faulty, ucx): waiting on a Done with a
// deadline, byte patterns, and a fetch header that names a range of the server's buffer.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "dataplane/transport/transport.h"
#include "gtest/gtest.h"

namespace ferry::dataplane::testing {

// A Done whose outcome can be awaited with a deadline.
class Completion {
 public:
  Completion() : promise_(std::make_shared<std::promise<absl::Status>>()) {
    future_ = promise_->get_future();
  }
  Done done() {
    return [p = promise_](absl::Status st) { p->set_value(std::move(st)); };
  }
  // nullopt if the deadline passed first.
  std::optional<absl::Status> Wait(std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    if (future_.wait_for(deadline) != std::future_status::ready) return std::nullopt;
    return future_.get();
  }
  bool Ready() { return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

 private:
  std::shared_ptr<std::promise<absl::Status>> promise_;
  std::future<absl::Status> future_;
};

inline uint8_t PatternByte(uint64_t seed, uint64_t i) {
  uint64_t x = (i + seed) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint8_t>(x >> 56);
}

inline void FillPattern(uint64_t seed, void* dst, size_t len, uint64_t first = 0) {
  auto* p = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < len; ++i) p[i] = PatternByte(seed, first + i);
}

// Index of the first byte that differs from the pattern, or -1.
inline int64_t FirstMismatch(uint64_t seed, const void* src, size_t len, uint64_t first = 0) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < len; ++i) {
    if (p[i] != PatternByte(seed, first + i)) return static_cast<int64_t>(i);
  }
  return -1;
}

// Fetch header used by the tests: "range of the server's buffer", plus a verb.
struct RangeHeader {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t verb = 0;  // 0 = reply, 1 = defer, 2 = fail, 3 = wrong length, 4 = hang
};

inline std::string EncodeRange(const RangeHeader& h) {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

inline std::optional<RangeHeader> DecodeRange(std::string_view s) {
  if (s.size() != sizeof(RangeHeader)) return std::nullopt;
  RangeHeader h;
  std::memcpy(&h, s.data(), sizeof(h));
  return h;
}

// A heap buffer registered once with one transport; tests carve their buffers from it, so
// every buffer a test fetches into or serves from lies in a registered region. Must outlive
// the transport's traffic (declare it before the transport is shut down).
class ScratchArena {
 public:
  struct Buffer {
    char* ptr = nullptr;
    LocalSlice slice;   // the whole buffer
    char* data() const { return ptr; }
    size_t size() const { return slice.length; }
    LocalSlice All() const { return slice; }
    LocalSlice Slice(uint64_t offset, uint64_t length) const {
      return LocalSlice{slice.region, slice.offset + offset, length};
    }
  };

  ScratchArena(Transport& t, size_t bytes) : bytes_(bytes) {
    absl::StatusOr<MemoryRegion> r = t.RegisterMemory(MemoryKind::kHost, bytes_.data(), bytes_.size());
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) region_ = *std::move(r);
  }
  // The next `len` bytes (64-byte aligned offsets); fails the test when the arena is full.
  Buffer Take(size_t len) {
    used_ = (used_ + 63) / 64 * 64;
    EXPECT_LE(used_ + len, bytes_.size()) << "test scratch arena exhausted";
    Buffer b{bytes_.data() + used_, LocalSlice{region_.id, used_, len}};
    used_ += len;
    return b;
  }
  const MemoryRegion& region() const { return region_; }

 private:
  std::vector<char> bytes_;
  MemoryRegion region_;
  size_t used_ = 0;
};

}  // namespace ferry::dataplane::testing
