// Tests of dataplane/store/allocator.h, including a randomized comparison against a model.
#include "dataplane/store/allocator.h"

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

using ::testing::HasSubstr;

TEST(AllocatorTest, FreshAllocatorIsOneFreeBlock) {
  Allocator a(1 << 20, 64);
  EXPECT_EQ(a.capacity(), 1u << 20);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.free_bytes(), 1u << 20);
  EXPECT_EQ(a.largest_free(), 1u << 20);
  EXPECT_EQ(a.allocated_blocks(), 0u);
}

TEST(AllocatorTest, CapacityIsRoundedDownToAlignment) {
  Allocator a(1000, 64);
  EXPECT_EQ(a.capacity(), 960u);
  EXPECT_EQ(a.largest_free(), 960u);
  Allocator tiny(63, 64);
  EXPECT_EQ(tiny.capacity(), 0u);
  EXPECT_EQ(tiny.Allocate(0).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(AllocatorTest, SizeZeroGetsADistinctMinimalBlock) {
  Allocator a(4096, 64);
  EXPECT_EQ(a.BlockSize(0), 64u);
  absl::StatusOr<uint64_t> x = a.Allocate(0);
  absl::StatusOr<uint64_t> y = a.Allocate(0);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_NE(*x, *y);
  EXPECT_EQ(a.used(), 128u);
  EXPECT_EQ(a.allocated_blocks(), 2u);
}

TEST(AllocatorTest, BlockSizeRoundsUp) {
  Allocator a(1 << 20, 4096);
  EXPECT_EQ(a.BlockSize(1), 4096u);
  EXPECT_EQ(a.BlockSize(4096), 4096u);
  EXPECT_EQ(a.BlockSize(4097), 8192u);
}

TEST(AllocatorTest, ExactFitFillsTheArena) {
  Allocator a(4096, 64);
  absl::StatusOr<uint64_t> all = a.Allocate(4096);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 0u);
  EXPECT_EQ(a.used(), 4096u);
  EXPECT_EQ(a.largest_free(), 0u);
  EXPECT_EQ(a.Allocate(0).status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(a.Free(0).ok());
  EXPECT_EQ(a.largest_free(), 4096u);
}

TEST(AllocatorTest, LargerThanCapacityIsResourceExhausted) {
  Allocator a(4096, 64);
  absl::StatusOr<uint64_t> r = a.Allocate(4097);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("4097"));
  EXPECT_EQ(a.Allocate(UINT64_MAX).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.Allocate(UINT64_MAX - 62).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.used(), 0u);
}

TEST(AllocatorTest, DoubleFreeAndBadOffsetAreNotFound) {
  Allocator a(4096, 64);
  absl::StatusOr<uint64_t> x = a.Allocate(100);
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE(a.Free(*x).ok());
  absl::Status again = a.Free(*x);
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(again.message(), HasSubstr(std::to_string(*x)));
  absl::StatusOr<uint64_t> y = a.Allocate(200);
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(a.Free(*y + 64).code(), absl::StatusCode::kNotFound);   // inside a block
  EXPECT_EQ(a.Free(999999).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.used(), 256u);
}

TEST(AllocatorTest, FragmentedArenaIsResourceExhaustedDespiteFreeBytes) {
  Allocator a(64 * 8, 64);
  std::vector<uint64_t> blocks;
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<uint64_t> b = a.Allocate(64);
    ASSERT_TRUE(b.ok());
    blocks.push_back(*b);
  }
  // Free every other block: 256 bytes free but no two adjacent.
  for (int i = 0; i < 8; i += 2) ASSERT_TRUE(a.Free(blocks[i]).ok());
  EXPECT_EQ(a.free_bytes(), 256u);
  EXPECT_EQ(a.largest_free(), 64u);
  absl::StatusOr<uint64_t> r = a.Allocate(128);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("largest block 64"));
  // Freeing a neighbour coalesces on both sides.
  ASSERT_TRUE(a.Free(blocks[1]).ok());
  EXPECT_EQ(a.largest_free(), 192u);
  EXPECT_TRUE(a.Allocate(192).ok());
}

TEST(AllocatorTest, BestFitPicksTheSmallestSufficientHole) {
  Allocator a(64 * 16, 64);
  std::vector<uint64_t> b;
  for (int i = 0; i < 16; ++i) b.push_back(*a.Allocate(64));
  // Holes: [b1,b2,b3] (192 bytes) and [b6] (64 bytes) and [b9,b10] (128 bytes).
  for (int i : {1, 2, 3, 6, 9, 10}) ASSERT_TRUE(a.Free(b[i]).ok());
  EXPECT_EQ(*a.Allocate(64), b[6]);
  EXPECT_EQ(*a.Allocate(100), b[9]);
  EXPECT_EQ(*a.Allocate(1), b[1]);
}

// The model: which bytes are in use, plus the live blocks (offset -> block length).
struct Model {
  explicit Model(uint64_t capacity) : used(capacity, false) {}
  std::vector<bool> used;
  std::map<uint64_t, uint64_t> blocks;
  uint64_t used_bytes = 0;
  // Largest gap between live blocks (blocks are aligned and whole multiples of the
  // alignment, so every gap is an aligned run of free bytes).
  uint64_t LargestGap() const {
    uint64_t best = 0;
    uint64_t end = 0;
    for (const auto& [off, len] : blocks) {
      best = std::max(best, off - end);
      end = off + len;
    }
    return std::max<uint64_t>(best, used.size() - end);
  }
};

void RandomizedRun(uint64_t seed, uint64_t capacity, uint64_t alignment, int steps) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " capacity " << capacity
                                    << " alignment " << alignment);
  std::mt19937_64 rng(seed);
  Allocator a(capacity, alignment);
  Model m(a.capacity());
  int exhausted = 0;
  for (int step = 0; step < steps; ++step) {
    const bool do_alloc = m.blocks.empty() || rng() % 100 < 55;
    if (do_alloc) {
      // Mostly small, sometimes large, sometimes zero.
      uint64_t size;
      switch (rng() % 8) {
        case 0: size = 0; break;
        case 1: size = rng() % (capacity / 4 + 1); break;
        default: size = rng() % (4 * alignment + 1); break;
      }
      const uint64_t need = a.BlockSize(size);
      const uint64_t largest_before = m.LargestGap();
      absl::StatusOr<uint64_t> off = a.Allocate(size);
      if (!off.ok()) {
        ASSERT_EQ(off.status().code(), absl::StatusCode::kResourceExhausted) << off.status();
        // Only when no aligned hole of that size exists.
        ASSERT_LT(largest_before, need) << "step " << step << ": refused " << size
                                        << " bytes with a hole of " << largest_before;
        ASSERT_EQ(a.largest_free(), largest_before) << "step " << step;
        ++exhausted;
        continue;
      }
      ASSERT_EQ(*off % alignment, 0u) << "step " << step;
      ASSERT_LE(*off + need, m.used.size()) << "step " << step;
      for (uint64_t i = *off; i < *off + need; ++i) {
        ASSERT_FALSE(m.used[i]) << "step " << step << ": overlap at byte " << i;
        m.used[i] = true;
      }
      m.blocks[*off] = need;
      m.used_bytes += need;
    } else {
      auto it = m.blocks.begin();
      std::advance(it, rng() % m.blocks.size());
      const uint64_t off = it->first;
      ASSERT_TRUE(a.Free(off).ok()) << "step " << step;
      for (uint64_t i = off; i < off + it->second; ++i) m.used[i] = false;
      m.used_bytes -= it->second;
      m.blocks.erase(it);
      if (rng() % 16 == 0) {
        ASSERT_EQ(a.Free(off).code(), absl::StatusCode::kNotFound) << "step " << step;
      }
    }
    ASSERT_EQ(a.used(), m.used_bytes) << "step " << step;
    ASSERT_EQ(a.free_bytes(), a.capacity() - m.used_bytes) << "step " << step;
    ASSERT_EQ(a.allocated_blocks(), m.blocks.size()) << "step " << step;
    ASSERT_EQ(a.largest_free(), m.LargestGap()) << "step " << step;
  }
  // Free everything in random order: coalescing must give back one block of capacity.
  std::vector<uint64_t> offsets;
  for (const auto& [off, len] : m.blocks) offsets.push_back(off);
  std::shuffle(offsets.begin(), offsets.end(), rng);
  for (uint64_t off : offsets) ASSERT_TRUE(a.Free(off).ok());
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.allocated_blocks(), 0u);
  EXPECT_EQ(a.largest_free(), a.capacity());
  absl::StatusOr<uint64_t> whole = a.Allocate(a.capacity());
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, 0u);
  EXPECT_GT(exhausted, 0) << "the run never filled the arena; raise the sizes";
}

TEST(AllocatorRandomizedTest, MatchesModel) {
  for (uint64_t seed : {1, 2, 3, 42, 1234567}) {
    RandomizedRun(seed, 64 * 1024, 64, 4000);
    if (HasFatalFailure()) return;
  }
}

TEST(AllocatorRandomizedTest, MatchesModelLargeAlignment) {
  for (uint64_t seed : {7, 8, 9}) {
    RandomizedRun(seed, 256 * 1024 + 100, 4096, 3000);
    if (HasFatalFailure()) return;
  }
}

TEST(AllocatorRandomizedTest, MatchesModelSmallAlignment) {
  for (uint64_t seed : {11, 12}) {
    RandomizedRun(seed, 4096, 1, 4000);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace ferry::dataplane
