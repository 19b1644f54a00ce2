// ReduceSink: staging slots, combining a child's chunks into the local object, marking them,
// and refusing what the chunk-sink contract rules out (reduce_sink.h).
#include "dataplane/engine/reduce_sink.h"

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "dataplane/store/object_store.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr uint64_t kSize = 3 * kChunk + 100;   // 4 chunks, the last one short
constexpr uint32_t kDTypeU8 = 7;               // proto DType value of u8 (StoredMeta.dtype)

// An arena (region 1) holding one receiving object, and a scratch region (2).
struct Fixture {
  explicit Fixture(uint64_t size = kSize, uint32_t chunk = kChunk, uint32_t scratch_bytes = 8 * kChunk)
      : arena(1 << 20), scratch(scratch_bytes), store(arena.size()) {
    absl::StatusOr<uint64_t> off = store.CreateReceiving("ns", "k", StoredMeta{size, kDTypeU8, size}, chunk);
    EXPECT_TRUE(off.ok()) << off.status();
    offset = off.value_or(0);
    spec.ns = "ns";
    spec.key = "k";
    spec.op = ReduceOp::kSum;
    spec.dtype = DType::kF32;
    spec.object_region = MemoryRegion{1, MemoryKind::kHost, arena.data(), arena.size(), ""};
    spec.object_offset = offset;
    spec.object_size = size;
    spec.scratch_region = MemoryRegion{2, MemoryKind::kHost, scratch.data(), scratch.size(), ""};
    spec.chunk_size = chunk;
    spec.window = 2;
  }
  float* ObjectF32() { return reinterpret_cast<float*>(arena.data() + offset); }
  uint8_t* Slot(const LocalSlice& s) { return scratch.data() + s.offset; }

  std::vector<uint8_t> arena;
  std::vector<uint8_t> scratch;
  ObjectStore store;
  uint64_t offset = 0;
  ReduceSinkSpec spec;
};

std::vector<uint32_t> store_missing(const ObjectStore& store) {
  absl::StatusOr<std::vector<uint32_t>> missing = store.MissingChunks("ns", "k");
  EXPECT_TRUE(missing.ok()) << missing.status();
  return missing.value_or(std::vector<uint32_t>{});
}

std::unique_ptr<ReduceSink> MustCreate(Fixture& f) {
  absl::StatusOr<std::unique_ptr<ReduceSink>> sink = ReduceSink::Create(&f.store, f.spec);
  EXPECT_TRUE(sink.ok()) << sink.status();
  return sink.ok() ? std::move(*sink) : nullptr;
}

TEST(ReduceSink, LandedChunksAreCombinedIntoTheObjectAndMarked) {
  Fixture f;
  const size_t n = kSize / 4;
  for (size_t i = 0; i < n; ++i) f.ObjectF32()[i] = static_cast<float>(i);   // the local input
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  for (uint32_t k = 0; k < 4; ++k) {
    const uint64_t first = uint64_t{k} * kChunk;
    const uint64_t len = k < 3 ? kChunk : 100;
    absl::StatusOr<LocalSlice> slot = sink->Destination(k, first, len);
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(slot->region, 2u);
    EXPECT_EQ(slot->length, len);
    EXPECT_EQ(slot->offset % kChunk, 0u);
    // The child's partial sum lands in the slot: 0.5 per element.
    for (uint64_t b = 0; b < len; b += 4) {
      const float half = 0.5f;
      std::memcpy(f.Slot(*slot) + b, &half, 4);
    }
    EXPECT_EQ(store_missing(f.store).size(), 4u - k);
    ASSERT_TRUE(sink->Landed(k).ok());
    EXPECT_EQ(store_missing(f.store).size(), 3u - k);
  }
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(f.ObjectF32()[i], static_cast<float>(i) + 0.5f) << i;
  EXPECT_TRUE(f.store.FinishReceiving("ns", "k").ok());
  EXPECT_EQ(sink->free_slots(), 2u);
}


TEST(ReduceSink, SlotsAreHandedOutUpToTheWindowAndFreedByLandedOrAbandoned) {
  Fixture f;
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  absl::StatusOr<LocalSlice> a = sink->Destination(0, 0, kChunk);
  absl::StatusOr<LocalSlice> b = sink->Destination(1, kChunk, kChunk);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->offset, b->offset);   // two distinct slots
  EXPECT_EQ(sink->free_slots(), 0u);
  absl::Status full = sink->Destination(2, 2 * kChunk, kChunk).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("2 staging slots"), std::string::npos) << full;
  sink->Abandoned(1);   // frees b's slot; nothing is marked
  EXPECT_EQ(sink->free_slots(), 1u);
  EXPECT_EQ(store_missing(f.store).size(), 4u);
  absl::StatusOr<LocalSlice> c = sink->Destination(2, 2 * kChunk, kChunk);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->offset, b->offset);   // the freed slot is reused
  ASSERT_TRUE(sink->Landed(0).ok());
  EXPECT_EQ(sink->free_slots(), 1u);
  sink->Abandoned(7);   // holds no slot: no-op
  EXPECT_EQ(sink->free_slots(), 1u);
  EXPECT_EQ(store_missing(f.store), (std::vector<uint32_t>{1, 2, 3}));
}

TEST(ReduceSink, EachChunkIsCombinedAtMostOncePerSlot) {
  Fixture f;
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->Landed(0).code(), absl::StatusCode::kFailedPrecondition);   // no Destination
  ASSERT_TRUE(sink->Destination(0, 0, kChunk).ok());
  EXPECT_EQ(sink->Destination(0, 0, kChunk).status().code(), absl::StatusCode::kFailedPrecondition);
  f.ObjectF32()[0] = 1.0f;
  std::memset(f.scratch.data(), 0, f.scratch.size());
  const float two = 2.0f;
  std::memcpy(f.scratch.data(), &two, 4);   // slot 0 is handed out first
  ASSERT_TRUE(sink->Landed(0).ok());
  absl::Status again = sink->Landed(0);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.message().find("chunk 0"), std::string::npos) << again;
  EXPECT_EQ(f.ObjectF32()[0], 3.0f);   // combined once
}

TEST(ReduceSink, BadChunksAreRefused) {
  Fixture f;
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->Destination(4, 4 * kChunk, kChunk).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(sink->Destination(3, 3 * kChunk, kChunk).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(sink->Destination(0, std::numeric_limits<uint64_t>::max(), 4).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(sink->Destination(0, 0, 2 * kChunk).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status split = sink->Destination(0, 0, 6).status();   // 1.5 f32 elements
  EXPECT_EQ(split.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(split.message().find("f32"), std::string::npos) << split;
  EXPECT_EQ(sink->Destination(0, 2, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sink->free_slots(), 2u);   // nothing was handed out
}

TEST(ReduceSink, CreateChecksTheSpec) {
  auto code = [](Fixture& f) { return ReduceSink::Create(&f.store, f.spec).status().code(); };
  {
    Fixture f;
    EXPECT_EQ(ReduceSink::Create(nullptr, f.spec).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    Fixture f;
    f.spec.dtype = DType::kBytes;
    EXPECT_EQ(code(f), absl::StatusCode::kInvalidArgument);
    f.spec.dtype = static_cast<DType>(9);
    EXPECT_EQ(code(f), absl::StatusCode::kInvalidArgument);
    f.spec.dtype = DType::kF32;
    f.spec.op = static_cast<ReduceOp>(0);
    EXPECT_EQ(code(f), absl::StatusCode::kInvalidArgument);
  }
  {
    Fixture f;
    f.spec.window = 0;
    EXPECT_EQ(code(f), absl::StatusCode::kInvalidArgument);
  }
  {
    Fixture f(kSize, kChunk - 2);   // 4094: not a multiple of 4
    EXPECT_EQ(code(f), absl::StatusCode::kInvalidArgument);
  }
  {
    Fixture f(kSize + 1);   // the object is not a whole number of f32 elements
    absl::Status st = ReduceSink::Create(&f.store, f.spec).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("element size 4"), std::string::npos) << st;
  }
  {
    Fixture f;
    f.spec.window = 9;   // 9 slots do not fit 8 chunks of scratch
    EXPECT_EQ(code(f), absl::StatusCode::kOutOfRange);
    f.spec.window = 8;
    EXPECT_EQ(code(f), absl::StatusCode::kOk);
    f.spec.object_size = f.arena.size();   // runs past the arena from its offset
    f.spec.object_offset = 64;
    EXPECT_EQ(code(f), absl::StatusCode::kOutOfRange);
  }
  {
    Fixture f;
    f.spec.scratch_region.kind = MemoryKind::kCudaDevice;
    EXPECT_EQ(code(f), absl::StatusCode::kUnimplemented);
    f.spec.scratch_region.kind = MemoryKind::kHost;
    f.spec.scratch_region.id = kNoRegion;
    EXPECT_EQ(code(f), absl::StatusCode::kInvalidArgument);
  }
  {
    Fixture f;   // scratch carved out of the arena right over the object
    f.spec.scratch_region = f.spec.object_region;
    f.spec.scratch_offset = f.offset + kChunk;
    absl::Status st = ReduceSink::Create(&f.store, f.spec).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("overlap"), std::string::npos) << st;
    f.spec.scratch_offset = f.offset + 4 * kChunk;   // just past the object: fine
    EXPECT_EQ(code(f), absl::StatusCode::kOk);
  }
}

// u8 chunks of an odd size are combined at odd addresses of the object, in any order, and u8
// sums wrap.
TEST(ReduceSink, OddChunkOffsetsAndIntegerWrap) {
  constexpr uint32_t kOdd = 1001;
  constexpr uint64_t kBytes = 3 * kOdd;
  Fixture f(kBytes, kOdd, 4 * kOdd);
  f.spec.dtype = DType::kU8;
  f.spec.op = ReduceOp::kSum;
  uint8_t* obj = f.arena.data() + f.offset;
  for (uint64_t i = 0; i < kBytes; ++i) obj[i] = static_cast<uint8_t>(i);
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  for (uint32_t k : {2u, 0u, 1u}) {   // any order
    absl::StatusOr<LocalSlice> slot = sink->Destination(k, uint64_t{k} * kOdd, kOdd);
    ASSERT_TRUE(slot.ok()) << slot.status();
    std::memset(f.Slot(*slot), 200, kOdd);
    ASSERT_TRUE(sink->Landed(k).ok());
  }
  for (uint64_t i = 0; i < kBytes; ++i) ASSERT_EQ(obj[i], static_cast<uint8_t>(i + 200)) << i;
  EXPECT_TRUE(store_missing(f.store).empty());
}

// A zeroed i32 object of `chunks` chunks of `chunk` bytes, window 8, scratch for `slots` slots.
std::unique_ptr<Fixture> ZeroedI32(uint32_t chunk, uint32_t chunks, uint32_t slots) {
  auto f = std::make_unique<Fixture>(uint64_t{chunk} * chunks, chunk, slots * chunk);
  f->spec.window = 8;
  f->spec.dtype = DType::kI32;
  std::memset(f->arena.data() + f->offset, 0, uint64_t{chunk} * chunks);
  return f;
}

// One thread's share of a concurrent test: lands chunks first_k, first_k + step, ... (of
// `chunk` bytes, fewer than `chunks`) through `sink`, each filled with the i32 value(k).
void LandI32Chunks(Fixture& f, ReduceSink& sink, uint32_t chunk, uint32_t chunks, uint32_t first_k, uint32_t step,
                   int32_t (*value)(uint32_t)) {
  for (uint32_t k = first_k; k < chunks; k += step) {
    absl::StatusOr<LocalSlice> slot = sink.Destination(k, uint64_t{k} * chunk, chunk);
    ASSERT_TRUE(slot.ok()) << slot.status();   // fewer threads per sink than slots: never exhausted
    const int32_t v = value(k);
    for (uint32_t b = 0; b < chunk; b += 4) std::memcpy(f.Slot(*slot) + b, &v, 4);
    ASSERT_TRUE(sink.Landed(k).ok());
  }
}

// Landed for different chunks from several threads at once (the transport completes fetches
// on its own threads); every chunk is combined exactly once.
TEST(ReduceSink, ConcurrentLandingsOfDifferentChunks) {
  constexpr uint32_t kSmall = 256;
  constexpr uint32_t kChunks = 64;
  constexpr uint64_t kTotal = uint64_t{kSmall} * kChunks;
  std::unique_ptr<Fixture> fixture = ZeroedI32(kSmall, kChunks, 8);
  Fixture& f = *fixture;
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      LandI32Chunks(f, *sink, kSmall, kChunks, t, 4, [](uint32_t k) { return static_cast<int32_t>(k + 1); });
    });
  }
  for (std::thread& t : threads) t.join();
  const auto* obj = reinterpret_cast<const int32_t*>(f.arena.data() + f.offset);
  for (uint64_t i = 0; i < kTotal / 4; ++i) ASSERT_EQ(obj[i], static_cast<int32_t>(i * 4 / kSmall + 1)) << i;
  EXPECT_TRUE(store_missing(f.store).empty());
  EXPECT_EQ(sink->free_slots(), 8u);
}

std::vector<std::unique_ptr<ReduceSink>> MustCreateGroup(Fixture& f, uint32_t children) {
  absl::StatusOr<std::vector<std::unique_ptr<ReduceSink>>> sinks = ReduceSink::CreateGroup(&f.store, f.spec, children);
  EXPECT_TRUE(sinks.ok()) << sinks.status();
  return sinks.ok() ? std::move(*sinks) : std::vector<std::unique_ptr<ReduceSink>>{};
}

// Lands `value` (f32) in every element of chunk k through `sink`.
void LandF32(Fixture& f, ReduceSink& sink, uint32_t k, float value) {
  const uint64_t first = uint64_t{k} * kChunk;
  const uint64_t len = std::min<uint64_t>(kChunk, kSize - first);
  absl::StatusOr<LocalSlice> slot = sink.Destination(k, first, len);
  ASSERT_TRUE(slot.ok()) << slot.status();
  for (uint64_t b = 0; b < len; b += 4) std::memcpy(f.Slot(*slot) + b, &value, 4);
  ASSERT_TRUE(sink.Landed(k).ok());
}

// A binary node: two children's pulls combine into the same object; a chunk is marked only when
// both have combined it.
TEST(ReduceSink, AGroupMarksAChunkOnlyWhenEveryChildHasCombinedIt) {
  Fixture f;
  const size_t n = kSize / 4;
  for (size_t i = 0; i < n; ++i) f.ObjectF32()[i] = static_cast<float>(i);
  std::vector<std::unique_ptr<ReduceSink>> sinks = MustCreateGroup(f, 2);
  ASSERT_EQ(sinks.size(), 2u);
  // Each child has its own slots: the second sink's lie after the first one's window.
  absl::StatusOr<LocalSlice> b0 = sinks[1]->Destination(0, 0, kChunk);
  ASSERT_TRUE(b0.ok()) << b0.status();
  EXPECT_GE(b0->offset, 2u * kChunk);
  sinks[1]->Abandoned(0);

  LandF32(f, *sinks[0], 0, 1.0f);
  EXPECT_EQ(store_missing(f.store).size(), 4u);   // one child only: not marked
  LandF32(f, *sinks[1], 0, 10.0f);
  EXPECT_EQ(store_missing(f.store), (std::vector<uint32_t>{1, 2, 3}));
  for (uint32_t k : {3u, 1u, 2u}) LandF32(f, *sinks[1], k, 10.0f);
  EXPECT_EQ(store_missing(f.store).size(), 3u);
  for (uint32_t k : {2u, 3u, 1u}) LandF32(f, *sinks[0], k, 1.0f);
  EXPECT_TRUE(store_missing(f.store).empty());
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(f.ObjectF32()[i], static_cast<float>(i) + 11.0f) << i;
  EXPECT_TRUE(f.store.FinishReceiving("ns", "k").ok());

  // A child's chunk is never combined twice: a retried pull into the same sink is refused.
  absl::Status again = sinks[0]->Destination(2, 2 * kChunk, kChunk).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.message().find("combined already"), std::string::npos) << again;
}

TEST(ReduceSink, CreateGroupChecksItsChildrenAndScratch) {
  Fixture f;
  EXPECT_EQ(ReduceSink::CreateGroup(&f.store, f.spec, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReduceSink::CreateGroup(&f.store, f.spec, ReduceSink::kMaxChildren + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  f.spec.window = 4;   // 2 x 4 slots fill the 8 chunks of scratch; 3 x 4 do not
  EXPECT_TRUE(ReduceSink::CreateGroup(&f.store, f.spec, 2).ok());
  EXPECT_EQ(ReduceSink::CreateGroup(&f.store, f.spec, 3).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(ReduceSink, AnEmptyObjectHasNoChunks) {
  Fixture f(0);
  std::unique_ptr<ReduceSink> sink = MustCreate(f);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->Destination(0, 0, 0).status().code(), absl::StatusCode::kOutOfRange);
}

// Two children landing the same chunks from several threads each: every chunk of every child is
// combined exactly once, and the combines into one chunk never interleave.
TEST(ReduceSink, ConcurrentChildrenCombineIntoTheSameChunks) {
  constexpr uint32_t kSmall = 4096;
  constexpr uint32_t kChunks = 48;
  constexpr uint64_t kTotal = uint64_t{kSmall} * kChunks;
  std::unique_ptr<Fixture> fixture = ZeroedI32(kSmall, kChunks, 16);
  Fixture& f = *fixture;
  std::vector<std::unique_ptr<ReduceSink>> sinks = MustCreateGroup(f, 2);
  ASSERT_EQ(sinks.size(), 2u);
  std::vector<std::thread> threads;
  for (uint32_t child = 0; child < 2; ++child) {
    for (uint32_t t = 0; t < 2; ++t) {
      threads.emplace_back([&, child, t] {
        if (child == 0) {
          LandI32Chunks(f, *sinks[0], kSmall, kChunks, t, 2, [](uint32_t k) { return static_cast<int32_t>(k + 1); });
        } else {
          LandI32Chunks(f, *sinks[1], kSmall, kChunks, t, 2, [](uint32_t) { return int32_t{1000}; });
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  const auto* obj = reinterpret_cast<const int32_t*>(f.arena.data() + f.offset);
  for (uint64_t i = 0; i < kTotal / 4; ++i) {
    ASSERT_EQ(obj[i], static_cast<int32_t>(i * 4 / kSmall + 1 + 1000)) << i;
  }
  EXPECT_TRUE(store_missing(f.store).empty());
}

}  // namespace
}  // namespace ferry::dataplane
