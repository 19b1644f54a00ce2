// Tests of dataplane/store/chunk_progress.h at the edges of the chunk grid.
#include "dataplane/store/chunk_progress.h"

#include <cstdint>
#include <optional>

#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

constexpr uint32_t kChunk = 1000;

TEST(ChunkProgressTest, EmptyObjectHasNoChunksAndIsComplete) {
  ChunkProgress p(0, kChunk);
  EXPECT_EQ(p.num_chunks(), 0u);
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(p.prefix(), 0u);
  EXPECT_EQ(p.landed_bytes(), 0u);
  EXPECT_EQ(p.NextMissing(0), std::nullopt);
  EXPECT_FALSE(p.Has(0));
  EXPECT_FALSE(p.MarkLanded(0));
  p.MarkAll();
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(p.landed(), 0u);
}

TEST(ChunkProgressTest, OneByte) {
  ChunkProgress p(1, kChunk);
  EXPECT_EQ(p.num_chunks(), 1u);
  EXPECT_EQ(p.ChunkRange(0), (std::pair<uint64_t, uint64_t>{0, 1}));
  EXPECT_FALSE(p.complete());
  EXPECT_EQ(p.NextMissing(0), 0u);
  EXPECT_TRUE(p.MarkLanded(0));
  EXPECT_FALSE(p.MarkLanded(0));   // second time: not new
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(p.prefix(), 1u);
  EXPECT_EQ(p.landed_bytes(), 1u);
  EXPECT_EQ(p.NextMissing(0), std::nullopt);
}

TEST(ChunkProgressTest, ChunkMinusOneChunkAndChunkPlusOne) {
  {
    ChunkProgress p(kChunk - 1, kChunk);
    EXPECT_EQ(p.num_chunks(), 1u);
    EXPECT_EQ(p.ChunkRange(0).second, kChunk - 1);
  }
  {
    ChunkProgress p(kChunk, kChunk);
    EXPECT_EQ(p.num_chunks(), 1u);
    EXPECT_EQ(p.ChunkRange(0), (std::pair<uint64_t, uint64_t>{0, kChunk}));
  }
  {
    ChunkProgress p(kChunk + 1, kChunk);
    EXPECT_EQ(p.num_chunks(), 2u);
    EXPECT_EQ(p.ChunkRange(0), (std::pair<uint64_t, uint64_t>{0, kChunk}));
    EXPECT_EQ(p.ChunkRange(1), (std::pair<uint64_t, uint64_t>{kChunk, 1}));
    EXPECT_TRUE(p.MarkLanded(1));
    EXPECT_EQ(p.prefix(), 0u);
    EXPECT_EQ(p.landed(), 1u);
    EXPECT_EQ(p.landed_bytes(), 1u);
    EXPECT_EQ(p.NextMissing(0), 0u);
    EXPECT_EQ(p.NextMissing(1), std::nullopt);
    EXPECT_TRUE(p.MarkLanded(0));
    EXPECT_EQ(p.prefix(), 2u);
    EXPECT_TRUE(p.complete());
    EXPECT_EQ(p.landed_bytes(), kChunk + 1u);
  }
}

TEST(ChunkProgressTest, RangesTileTheObject) {
  for (uint64_t size : {1ull, 999ull, 1000ull, 1001ull, 64'000ull, 64'001ull, 130'999ull}) {
    ChunkProgress p(size, kChunk);
    uint64_t next = 0;
    for (uint32_t k = 0; k < p.num_chunks(); ++k) {
      auto [first, len] = p.ChunkRange(k);
      EXPECT_EQ(first, next) << size << " chunk " << k;
      EXPECT_GT(len, 0u) << size << " chunk " << k;
      EXPECT_LE(len, kChunk);
      next = first + len;
    }
    EXPECT_EQ(next, size);
    EXPECT_EQ(p.ChunkRange(p.num_chunks()).second, 0u) << "past the end is empty";
  }
}

TEST(ChunkProgressTest, PrefixAdvancesOverOutOfOrderLandings) {
  // 130 chunks: crosses two bitmap words.
  ChunkProgress p(130 * uint64_t{kChunk}, kChunk);
  ASSERT_EQ(p.num_chunks(), 130u);
  for (uint32_t k = 1; k < 130; ++k) EXPECT_TRUE(p.MarkLanded(k));
  EXPECT_EQ(p.prefix(), 0u);
  EXPECT_EQ(p.landed(), 129u);
  EXPECT_EQ(p.NextMissing(0), 0u);
  EXPECT_EQ(p.NextMissing(1), std::nullopt);
  EXPECT_TRUE(p.MarkLanded(0));
  EXPECT_EQ(p.prefix(), 130u);
  EXPECT_TRUE(p.complete());
}

TEST(ChunkProgressTest, NextMissingSkipsLandedAndPrefix) {
  ChunkProgress p(10 * uint64_t{kChunk} + 5, kChunk);   // 11 chunks, last is 5 bytes
  ASSERT_EQ(p.num_chunks(), 11u);
  for (uint32_t k : {0u, 1u, 2u, 4u, 10u}) p.MarkLanded(k);
  EXPECT_EQ(p.prefix(), 3u);
  EXPECT_EQ(p.NextMissing(0), 3u);
  EXPECT_EQ(p.NextMissing(4), 5u);
  EXPECT_EQ(p.NextMissing(9), 9u);
  EXPECT_EQ(p.NextMissing(10), std::nullopt);
  EXPECT_EQ(p.NextMissing(11), std::nullopt);
  EXPECT_EQ(p.NextMissing(UINT32_MAX), std::nullopt);
  EXPECT_EQ(p.landed_bytes(), 4 * uint64_t{kChunk} + 5);
}

TEST(ChunkProgressTest, OutOfRangeMarksAreIgnored) {
  ChunkProgress p(2 * uint64_t{kChunk}, kChunk);
  EXPECT_FALSE(p.MarkLanded(2));
  EXPECT_FALSE(p.MarkLanded(UINT32_MAX));
  EXPECT_FALSE(p.Has(2));
  EXPECT_EQ(p.landed(), 0u);
}

TEST(ChunkProgressTest, MarkAllCompletesAndLastChunkIsShort) {
  ChunkProgress p(5 * uint64_t{kChunk} + 7, kChunk);
  p.MarkLanded(2);
  p.MarkAll();
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(p.landed(), 6u);
  EXPECT_EQ(p.prefix(), 6u);
  for (uint32_t k = 0; k < 6; ++k) EXPECT_TRUE(p.Has(k));
  EXPECT_EQ(p.NextMissing(0), std::nullopt);
  EXPECT_EQ(p.landed_bytes(), 5 * uint64_t{kChunk} + 7);
  EXPECT_EQ(p.ChunkRange(5), (std::pair<uint64_t, uint64_t>{5 * uint64_t{kChunk}, 7}));
  EXPECT_FALSE(p.MarkLanded(5));
}

TEST(ChunkProgressTest, LargeObjectRangesDoNotOverflow32Bits) {
  const uint64_t size = (uint64_t{1} << 33) + 3;   // 8 GiB + 3
  const uint32_t chunk = 4u << 20;
  ChunkProgress p(size, chunk);
  EXPECT_EQ(p.num_chunks(), 2049u);
  auto [first, len] = p.ChunkRange(2048);
  EXPECT_EQ(first, uint64_t{1} << 33);
  EXPECT_EQ(len, 3u);
}

}  // namespace
}  // namespace ferry::dataplane
