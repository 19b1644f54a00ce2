#include "perf/ferry_perf/pattern.h"

#include <algorithm>
#include <cstring>

namespace ferry::perf {

uint64_t PatternSeed(uint64_t size, int64_t iter) {
  return SplitMix64(SplitMix64(size) ^ static_cast<uint64_t>(iter) * 0xD1B54A32D192ED03ull);
}

void FillPattern(uint64_t seed, uint8_t* data, size_t n) {
  const size_t words = n / 8;
  for (size_t i = 0; i < words; ++i) {
    const uint64_t w = SplitMix64(seed + i);
    std::memcpy(data + i * 8, &w, 8);
  }
  if (const size_t tail = n % 8; tail != 0) {
    const uint64_t w = SplitMix64(seed + words);
    std::memcpy(data + words * 8, &w, tail);
  }
}

uint64_t CountMismatchedWords(const uint8_t* actual, const uint8_t* expected, size_t n) {
  constexpr size_t kBlock = 64 << 10;  // a multiple of 8: blocks start on word boundaries
  uint64_t errors = 0;
  for (size_t off = 0; off < n; off += kBlock) {
    const size_t len = std::min(kBlock, n - off);
    if (std::memcmp(actual + off, expected + off, len) == 0) continue;
    for (size_t w = 0; w < len; w += 8) {
      const size_t wl = std::min<size_t>(8, len - w);
      errors += std::memcmp(actual + off + w, expected + off + w, wl) != 0 ? 1 : 0;
    }
  }
  return errors;
}

}  // namespace ferry::perf
