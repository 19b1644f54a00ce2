// CopySink: where chunks land and what landing one does (chunk_sink.h).
#include "dataplane/engine/chunk_sink.h"

#include <cstdint>
#include <limits>

#include "dataplane/store/object_store.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr uint64_t kSize = 3 * kChunk + 100;   // 4 chunks, the last one short

TEST(CopySink, ChunksLandAtTheObjectsOffsetInItsRegion) {
  ObjectStore store(1 << 20);
  absl::StatusOr<uint64_t> off = store.CreateReceiving("ns", "k", StoredMeta{kSize, 0, kSize}, kChunk);
  ASSERT_TRUE(off.ok()) << off.status();
  CopySink sink(&store, "ns", "k", LocalSlice{7, *off, kSize});
  absl::StatusOr<LocalSlice> first = sink.Destination(0, 0, kChunk);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->region, 7u);
  EXPECT_EQ(first->offset, *off);
  EXPECT_EQ(first->length, kChunk);
  absl::StatusOr<LocalSlice> last = sink.Destination(3, 3 * kChunk, 100);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->offset, *off + 3 * kChunk);
  EXPECT_EQ(last->length, 100u);
}

TEST(CopySink, LandedMarksTheChunkInTheStore) {
  ObjectStore store(1 << 20);
  absl::StatusOr<uint64_t> off = store.CreateReceiving("ns", "k", StoredMeta{kSize, 0, kSize}, kChunk);
  ASSERT_TRUE(off.ok()) << off.status();
  CopySink sink(&store, "ns", "k", LocalSlice{1, *off, kSize});
  ASSERT_EQ(store.MissingChunks("ns", "k")->size(), 4u);
  EXPECT_TRUE(sink.Landed(2).ok());
  EXPECT_EQ(*store.MissingChunks("ns", "k"), (std::vector<uint32_t>{0, 1, 3}));
  sink.Abandoned(1);   // no effect on the store
  EXPECT_EQ(*store.MissingChunks("ns", "k"), (std::vector<uint32_t>{0, 1, 3}));
  for (uint32_t k : {0u, 1u, 3u}) EXPECT_TRUE(sink.Landed(k).ok());
  EXPECT_TRUE(store.MissingChunks("ns", "k")->empty());
  EXPECT_TRUE(store.FinishReceiving("ns", "k").ok());
}

TEST(CopySink, AChunkOutsideTheObjectIsRefused) {
  ObjectStore store(1 << 20);
  CopySink sink(&store, "ns", "k", LocalSlice{1, 4096, kSize});
  EXPECT_EQ(sink.Destination(4, 4 * kChunk, kChunk).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(sink.Destination(3, 3 * kChunk, kChunk).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(sink.Destination(0, std::numeric_limits<uint64_t>::max(), 2).status().code(),
            absl::StatusCode::kOutOfRange);
  absl::Status st = sink.Destination(9, 9 * kChunk, 1).status();
  EXPECT_NE(st.message().find("chunk 9"), std::string::npos) << st;
  // An object range that wraps the 64-bit offset space is refused too.
  CopySink wraps(&store, "ns", "k", LocalSlice{1, std::numeric_limits<uint64_t>::max() - 10, kSize});
  EXPECT_EQ(wraps.Destination(0, 0, 1).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace ferry::dataplane
