// The bytes ferry-perf moves and how a received copy is checked. The pattern depends only
// on (size, iteration), so any process can regenerate what a copy must hold; every 8-byte
// word differs from its neighbours, so a shifted, truncated or stale copy is caught.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::perf {

// splitmix64: one step of the generator the pattern and the model shapes are built from.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Seed of the object moved in iteration `iter` (negative for warm-ups) at `size` bytes.
uint64_t PatternSeed(uint64_t size, int64_t iter);

// Fills data[0, n) with the pattern of `seed`: word i is splitmix64(seed + i); a trailing
// partial word takes the low bytes of the next word.
void FillPattern(uint64_t seed, uint8_t* data, size_t n);

// Number of 8-byte words (a trailing partial word counts as one) in which `actual` and
// `expected` differ. memcmp fast path; only differing blocks are scanned word by word.
uint64_t CountMismatchedWords(const uint8_t* actual, const uint8_t* expected, size_t n);

// Words in an object of n bytes (what a missing copy counts as).
inline uint64_t WordsIn(size_t n) { return (n + 7) / 8; }

}  // namespace ferry::perf
