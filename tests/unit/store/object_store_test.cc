// Tests of dataplane/store/object_store.h: lifecycle, pins, sessions, eviction, the receive
// path and the serve path. Offsets only: the store never touches memory.
#include "dataplane/store/object_store.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr SessionId kAlice = 1;
constexpr SessionId kBob = 2;
constexpr uint64_t kKiB = 1024;

StoredMeta Meta(uint64_t size) { return StoredMeta{size, /*dtype=*/0, /*count=*/size}; }

bool Overlap(uint64_t a_off, uint64_t a_len, uint64_t b_off, uint64_t b_len) {
  return a_off < b_off + b_len && b_off < a_off + a_len;
}

// Records what a ChunkReady callback received.
struct ServeResult {
  bool called = false;
  absl::StatusOr<ServeSlice> slice = absl::UnknownError("not called");
  ChunkReady Callback() {
    return [this](absl::StatusOr<ServeSlice> s) {
      called = true;
      slice = std::move(s);
    };
  }
};

class ObjectStoreTest : public ::testing::Test {
 protected:
  // Creates and seals `key` of `size` bytes for kAlice; returns its offset.
  uint64_t MakeSealed(ObjectStore& store, const std::string& key, uint64_t size) {
    absl::StatusOr<uint64_t> off = store.Create("ns", key, Meta(size), kAlice);
    EXPECT_TRUE(off.ok()) << off.status();
    EXPECT_TRUE(store.Seal("ns", key, kAlice).ok());
    return off.value_or(~0ull);
  }
};

// ---- lifecycle ---------------------------------------------------------------------------------

TEST_F(ObjectStoreTest, CreateSealPinReleaseDelete) {
  ObjectStore store(64 * kKiB);
  absl::StatusOr<uint64_t> off = store.Create("ns", "k", StoredMeta{4000, 7, 1000}, kAlice);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(store.Contains("ns", "k"));
  EXPECT_FALSE(store.Contains("other", "k"));
  EXPECT_EQ(store.Stats().objects, 1u);
  EXPECT_EQ(store.Stats().sealed, 0u);
  EXPECT_EQ(store.Stats().used, 4032u);   // rounded up to 64

  absl::StatusOr<PinnedObject> early = store.PinSealed("ns", "k", kBob);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("ns/k"));

  ASSERT_TRUE(store.Seal("ns", "k", kAlice).ok());
  EXPECT_EQ(store.Stats().sealed, 1u);
  absl::StatusOr<PinnedObject> pin = store.PinSealed("ns", "k", kBob);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->offset, *off);
  EXPECT_EQ(pin->meta.size, 4000u);
  EXPECT_EQ(pin->meta.dtype, 7u);
  EXPECT_EQ(pin->meta.count, 1000u);
  EXPECT_EQ(store.Stats().pinned, 1u);

  ASSERT_TRUE(store.Release("ns", "k", kBob).ok());
  EXPECT_EQ(store.Stats().pinned, 0u);
  EXPECT_EQ(store.Release("ns", "k", kBob).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Release("ns", "k", kAlice).code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store.Delete("ns", "k").ok());
  EXPECT_FALSE(store.Contains("ns", "k"));
  EXPECT_EQ(store.Stats().used, 0u);
  absl::Status again = store.Delete("ns", "k");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(again.message(), HasSubstr("ns/k"));
  EXPECT_EQ(store.PinSealed("ns", "k", kBob).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ObjectStoreTest, CreateErrors) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.Create("ns", "k", Meta(10), kAlice).ok());
  absl::StatusOr<uint64_t> dup = store.Create("ns", "k", Meta(10), kBob);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(dup.status().message(), HasSubstr("ns/k"));
  EXPECT_TRUE(store.Create("ns2", "k", Meta(10), kBob).ok()) << "namespaces are separate";
  EXPECT_EQ(store.Create("bad ns", "k", Meta(10), kAlice).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Create("ns", "", Meta(10), kAlice).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Create("ns", std::string(257, 'k'), Meta(10), kAlice).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Binary keys are fine and distinct.
  EXPECT_TRUE(store.Create("ns", std::string("k\0", 2), Meta(10), kAlice).ok());
}

TEST_F(ObjectStoreTest, ZeroSizeObjectsGetDistinctOffsets) {
  ObjectStore store(64 * kKiB);
  absl::StatusOr<uint64_t> a = store.Create("ns", "a", Meta(0), kAlice);
  absl::StatusOr<uint64_t> b = store.Create("ns", "b", Meta(0), kAlice);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  ASSERT_TRUE(store.Seal("ns", "a", kAlice).ok());
  EXPECT_TRUE(store.PinSealed("ns", "a", kBob).ok());
}

TEST_F(ObjectStoreTest, SealErrors) {
  ObjectStore store(64 * kKiB);
  EXPECT_EQ(store.Seal("ns", "missing", kAlice).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store.Create("ns", "k", Meta(10), kAlice).ok());
  absl::Status other = store.Seal("ns", "k", kBob);
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("ns/k"));
  ASSERT_TRUE(store.Seal("ns", "k", kAlice).ok());
  absl::Status twice = store.Seal("ns", "k", kAlice);
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(twice.message(), HasSubstr("already sealed"));
}

TEST_F(ObjectStoreTest, AbortRules) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.Create("ns", "k", Meta(1000), kAlice).ok());
  EXPECT_EQ(store.Abort("ns", "k", kBob).code(), absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(store.Abort("ns", "k", kAlice).ok());
  EXPECT_FALSE(store.Contains("ns", "k"));
  EXPECT_EQ(store.Stats().used, 0u);
  EXPECT_EQ(store.Abort("ns", "k", kAlice).code(), absl::StatusCode::kNotFound);
  MakeSealed(store, "s", 100);
  EXPECT_EQ(store.Abort("ns", "s", kAlice).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ObjectStoreTest, PinsCountPerSession) {
  ObjectStore store(64 * kKiB);
  MakeSealed(store, "k", 100);
  ASSERT_TRUE(store.PinSealed("ns", "k", kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "k", kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "k", kAlice).ok());
  std::vector<ListedLocal> listed = store.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].pins, 3u);
  EXPECT_TRUE(store.Release("ns", "k", kBob).ok());
  EXPECT_TRUE(store.Release("ns", "k", kBob).ok());
  EXPECT_EQ(store.Release("ns", "k", kBob).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.List()[0].pins, 1u);
}

// ---- WaitSealed ----------------------------------------------------------------------------------

TEST_F(ObjectStoreTest, WaitSealedMissingIsNotFound) {
  ObjectStore store(64 * kKiB);
  EXPECT_EQ(store.WaitSealed("ns", "nope", kBob, absl::Now() + absl::Seconds(30)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ObjectStoreTest, WaitSealedDeadlineNamesTheObject) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.Create("ns", "slow", Meta(10), kAlice).ok());
  // A deadline already in the past: no waiting at all.
  absl::StatusOr<PinnedObject> r = store.WaitSealed("ns", "slow", kBob, absl::Now());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.status().message(), HasSubstr("ns/slow"));
  EXPECT_THAT(r.status().message(), HasSubstr("writing"));
  ASSERT_TRUE(store.CreateReceiving("ns", "recv", Meta(10), 4).ok());
  absl::StatusOr<PinnedObject> rr = store.WaitSealed("ns", "recv", kBob, absl::InfinitePast());
  EXPECT_EQ(rr.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(rr.status().message(), HasSubstr("received"));
  EXPECT_EQ(store.Stats().pinned, 0u);
}

TEST_F(ObjectStoreTest, WaitSealedWakesWhenSealedByAnotherThread) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.Create("ns", "k", Meta(10), kAlice).ok());
  std::optional<absl::StatusOr<PinnedObject>> result;
  std::thread waiter([&] { result = store.WaitSealed("ns", "k", kBob, absl::Now() + absl::Seconds(60)); });
  ASSERT_TRUE(store.Seal("ns", "k", kAlice).ok());
  waiter.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_EQ(store.Stats().pinned, 1u);
  EXPECT_TRUE(store.Release("ns", "k", kBob).ok());
}

TEST_F(ObjectStoreTest, WaitSealedWakesWhenFinishedReceiving) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.CreateReceiving("ns", "k", Meta(10), 4).ok());
  std::optional<absl::StatusOr<PinnedObject>> result;
  std::thread waiter([&] { result = store.WaitSealed("ns", "k", kBob, absl::Now() + absl::Seconds(60)); });
  for (uint32_t k = 0; k < 3; ++k) store.MarkChunk("ns", "k", k);
  ASSERT_TRUE(store.FinishReceiving("ns", "k").ok());
  waiter.join();
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok()) << result->status();
}

TEST_F(ObjectStoreTest, WaitSealedFailsWhenAbortedWhileWaiting) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.Create("ns", "k", Meta(10), kAlice).ok());
  std::optional<absl::StatusOr<PinnedObject>> result;
  std::thread waiter([&] { result = store.WaitSealed("ns", "k", kBob, absl::Now() + absl::Seconds(60)); });
  ASSERT_TRUE(store.Abort("ns", "k", kAlice).ok());
  waiter.join();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status().code(), absl::StatusCode::kNotFound);
}

// ---- eviction ------------------------------------------------------------------------------------

TEST_F(ObjectStoreTest, EvictsLeastRecentlyUsedUnpinnedSealed) {
  ObjectStore store(4 * kKiB);
  std::vector<std::pair<std::string, std::string>> evicted;
  store.SetEvictionListener([&](const std::string& ns, const std::string& key) {
    // Runs without the store's lock: calling back in must not deadlock.
    EXPECT_FALSE(store.Contains(ns, key));
    evicted.emplace_back(ns, key);
  });
  for (const char* k : {"a", "b", "c", "d"}) MakeSealed(store, k, kKiB);
  // Touch b: pin and release moves it to the most recently used end. Pin c for good.
  ASSERT_TRUE(store.PinSealed("ns", "b", kBob).ok());
  ASSERT_TRUE(store.Release("ns", "b", kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "c", kBob).ok());
  // LRU order now: a, d, b (c pinned).
  ASSERT_TRUE(store.Create("ns", "e", Meta(kKiB), kAlice).ok());
  EXPECT_THAT(evicted, ElementsAre(std::pair<std::string, std::string>("ns", "a")));
  ASSERT_TRUE(store.Create("ns", "f", Meta(kKiB), kAlice).ok());
  EXPECT_THAT(evicted, ElementsAre(std::pair<std::string, std::string>("ns", "a"),
                                   std::pair<std::string, std::string>("ns", "d")));
  EXPECT_TRUE(store.Contains("ns", "b"));
  EXPECT_TRUE(store.Contains("ns", "c"));
  EXPECT_EQ(store.Stats().evictions, 2u);
  // b is next; c (pinned), e and f (unsealed) are never victims.
  ASSERT_TRUE(store.Create("ns", "g", Meta(kKiB), kAlice).ok());
  EXPECT_EQ(evicted.back(), (std::pair<std::string, std::string>("ns", "b")));
  absl::StatusOr<uint64_t> full = store.Create("ns", "h", Meta(1), kAlice);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("ns/h"));
  EXPECT_TRUE(store.Contains("ns", "c"));
  EXPECT_EQ(evicted.size(), 3u);
}

TEST_F(ObjectStoreTest, EvictsSeveralObjectsForOneLargeCreate) {
  ObjectStore store(4 * kKiB);
  std::vector<std::string> evicted;
  store.SetEvictionListener([&](const std::string&, const std::string& key) { evicted.push_back(key); });
  for (const char* k : {"a", "b", "c", "d"}) MakeSealed(store, k, kKiB);
  ASSERT_TRUE(store.Create("ns", "big", Meta(3 * kKiB), kAlice).ok());
  EXPECT_THAT(evicted, ElementsAre("a", "b", "c"));
  EXPECT_TRUE(store.Contains("ns", "d"));
}

TEST_F(ObjectStoreTest, ResourceExhaustedWhenEverythingIsPinned) {
  ObjectStore store(4 * kKiB);
  int evictions = 0;
  store.SetEvictionListener([&](const std::string&, const std::string&) { ++evictions; });
  for (const char* k : {"a", "b"}) {
    MakeSealed(store, k, 2 * kKiB);
    ASSERT_TRUE(store.PinSealed("ns", k, kBob).ok());
  }
  absl::StatusOr<uint64_t> r = store.Create("ns", "c", Meta(64), kAlice);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("ns/c"));
  EXPECT_EQ(evictions, 0);
  EXPECT_FALSE(store.Contains("ns", "c"));
}

TEST_F(ObjectStoreTest, LargerThanCapacityEvictsNothing) {
  ObjectStore store(4 * kKiB);
  int evictions = 0;
  store.SetEvictionListener([&](const std::string&, const std::string&) { ++evictions; });
  MakeSealed(store, "a", kKiB);
  absl::StatusOr<uint64_t> r = store.Create("ns", "huge", Meta(4 * kKiB + 1), kAlice);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("ns/huge"));
  EXPECT_THAT(r.status().message(), HasSubstr("4097"));
  EXPECT_EQ(evictions, 0);
  EXPECT_TRUE(store.Contains("ns", "a"));
  EXPECT_EQ(store.CreateReceiving("ns", "huge2", Meta(1ull << 40), 1 << 20).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// The header promises to evict only "every unpinned sealed object that could help". When a
// pinned object splits the arena so that no eviction can make room, nothing should be lost.
TEST_F(ObjectStoreTest, FailedCreateDoesNotEvictObjectsThatCannotHelp) {
  ObjectStore store(4 * kKiB);
  std::vector<std::string> evicted;
  store.SetEvictionListener([&](const std::string&, const std::string& key) { evicted.push_back(key); });
  for (const char* k : {"a", "b", "c", "d"}) MakeSealed(store, k, kKiB);   // a|b|c|d
  ASSERT_TRUE(store.PinSealed("ns", "b", kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "d", kBob).ok());
  // Free holes can be at most 1 KiB (a, c) since b and d are pinned between them.
  absl::StatusOr<uint64_t> r = store.Create("ns", "two", Meta(2 * kKiB), kAlice);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(evicted, IsEmpty()) << "objects were evicted for a create that failed anyway";
  EXPECT_TRUE(store.Contains("ns", "a"));
  EXPECT_TRUE(store.Contains("ns", "c"));
}

TEST_F(ObjectStoreTest, DeleteOfPinnedObjectKeepsItsBlockUntilRelease) {
  ObjectStore store(2 * kKiB);
  uint64_t x_off = MakeSealed(store, "x", kKiB);
  ASSERT_TRUE(store.PinSealed("ns", "x", kBob).ok());
  ASSERT_TRUE(store.Delete("ns", "x").ok());
  EXPECT_FALSE(store.Contains("ns", "x"));
  EXPECT_EQ(store.PinSealed("ns", "x", kAlice).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Stats().used, kKiB) << "the deleted but pinned block is still in use";
  // Something else (even under the same name) must not land on the pinned bytes.
  absl::StatusOr<uint64_t> y = store.Create("ns", "x", Meta(kKiB), kAlice);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_FALSE(Overlap(*y, kKiB, x_off, kKiB));
  EXPECT_EQ(store.Create("ns", "z", Meta(kKiB), kAlice).status().code(),
            absl::StatusCode::kResourceExhausted);
  // The new "x" is unpinned by Bob, so the release goes to the deleted one.
  ASSERT_TRUE(store.Release("ns", "x", kBob).ok());
  EXPECT_EQ(store.Stats().used, kKiB);
  absl::StatusOr<uint64_t> z = store.Create("ns", "z", Meta(kKiB), kAlice);
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(*z, x_off);
  EXPECT_EQ(store.Release("ns", "x", kBob).code(), absl::StatusCode::kNotFound);
}

TEST_F(ObjectStoreTest, InternalPinKeepsDeletedObjectAlive) {
  ObjectStore store(kKiB);
  MakeSealed(store, "x", kKiB);
  absl::StatusOr<PinnedObject> pin = store.PinInternal("ns", "x");
  ASSERT_TRUE(pin.ok());
  ASSERT_TRUE(store.Delete("ns", "x").ok());
  EXPECT_EQ(store.Create("ns", "y", Meta(1), kAlice).status().code(),
            absl::StatusCode::kResourceExhausted);
  store.Unpin(*pin);
  EXPECT_TRUE(store.Create("ns", "y", Meta(kKiB), kAlice).ok());
  EXPECT_EQ(store.PinInternal("ns", "nope").status().code(), absl::StatusCode::kNotFound);
}

// ---- sessions ------------------------------------------------------------------------------------

TEST_F(ObjectStoreTest, EndSessionReclaimsUnsealedAndDropsPins) {
  ObjectStore store(4 * kKiB);
  MakeSealed(store, "shared", kKiB);
  ASSERT_TRUE(store.Create("ns", "draft", Meta(kKiB), kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "shared", kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "shared", kBob).ok());
  ASSERT_TRUE(store.PinSealed("ns", "shared", kAlice).ok());
  MakeSealed(store, "gone", kKiB);
  ASSERT_TRUE(store.PinSealed("ns", "gone", kBob).ok());
  ASSERT_TRUE(store.Delete("ns", "gone").ok());   // deleted while Bob still pins it
  EXPECT_EQ(store.Stats().used, 3 * kKiB);

  store.EndSession(kBob);
  EXPECT_FALSE(store.Contains("ns", "draft"));
  EXPECT_TRUE(store.Contains("ns", "shared"));
  EXPECT_EQ(store.Stats().used, kKiB) << "draft and the deleted 'gone' are freed";
  std::vector<ListedLocal> listed = store.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].pins, 1u) << "Alice's pin survives";
  EXPECT_EQ(store.Release("ns", "shared", kBob).code(), absl::StatusCode::kNotFound);
  // Once Alice's session ends too, "shared" is evictable.
  store.EndSession(kAlice);
  EXPECT_TRUE(store.Create("ns", "big", Meta(4 * kKiB), kBob).ok());
  EXPECT_FALSE(store.Contains("ns", "shared"));
}

TEST_F(ObjectStoreTest, ListSealedOnlyListsSealed) {
  ObjectStore store(4 * kKiB);
  MakeSealed(store, "s", 10);
  ASSERT_TRUE(store.Create("ns", "w", Meta(10), kAlice).ok());
  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(10), 4).ok());
  EXPECT_EQ(store.List().size(), 3u);
  std::vector<ListedLocal> sealed = store.ListSealed();
  ASSERT_EQ(sealed.size(), 1u);
  EXPECT_EQ(sealed[0].key, "s");
  EXPECT_EQ(sealed[0].state, ObjectState::kSealed);
}

// ---- receive path ----------------------------------------------------------------------------------

TEST_F(ObjectStoreTest, ReceivingLifecycle) {
  ObjectStore store(64 * kKiB);
  EXPECT_EQ(store.CreateReceiving("ns", "r", Meta(100), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(3 * 1000 + 1), 1000).ok());
  EXPECT_EQ(store.CreateReceiving("ns", "r", Meta(10), 1000).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(*store.MissingChunks("ns", "r"), ElementsAre(0u, 1u, 2u, 3u));
  store.MarkChunk("ns", "r", 1);
  store.MarkChunk("ns", "r", 3);
  store.MarkChunk("ns", "r", 3);    // twice: harmless
  store.MarkChunk("ns", "r", 99);   // past the end: ignored
  store.MarkChunk("ns", "nope", 0);  // unknown object: ignored
  EXPECT_THAT(*store.MissingChunks("ns", "r"), ElementsAre(0u, 2u));

  absl::Status early = store.FinishReceiving("ns", "r");
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.message(), HasSubstr("2 chunks missing"));
  EXPECT_EQ(store.PinSealed("ns", "r", kBob).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Seal("ns", "r", kInternalSession).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Abort("ns", "r", kInternalSession).code(), absl::StatusCode::kFailedPrecondition);

  store.MarkChunk("ns", "r", 0);
  store.MarkChunk("ns", "r", 2);
  EXPECT_THAT(*store.MissingChunks("ns", "r"), IsEmpty());
  ASSERT_TRUE(store.FinishReceiving("ns", "r").ok());
  EXPECT_TRUE(store.PinSealed("ns", "r", kBob).ok());
  EXPECT_EQ(store.FinishReceiving("ns", "r").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.FinishReceiving("ns", "nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.MissingChunks("ns", "nope").status().code(), absl::StatusCode::kNotFound);
  // A client-written object has nothing missing.
  MakeSealed(store, "s", 10);
  EXPECT_THAT(*store.MissingChunks("ns", "s"), IsEmpty());
}

TEST_F(ObjectStoreTest, ZeroSizeReceivingObjectFinishesAtOnce) {
  ObjectStore store(4 * kKiB);
  ASSERT_TRUE(store.CreateReceiving("ns", "empty", Meta(0), 1000).ok());
  EXPECT_THAT(*store.MissingChunks("ns", "empty"), IsEmpty());
  EXPECT_TRUE(store.FinishReceiving("ns", "empty").ok());
}

TEST_F(ObjectStoreTest, AbortReceivingDropsTheCopyAndFailsWaiters) {
  ObjectStore store(4 * kKiB);
  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(2000), 1000).ok());
  ServeResult waiter;
  store.ServeChunk("ns", "r", 1000, 1, waiter.Callback());
  EXPECT_FALSE(waiter.called);
  store.AbortReceiving("ns", "r", absl::UnavailableError("sender node 9 died"));
  ASSERT_TRUE(waiter.called);
  EXPECT_EQ(waiter.slice.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(waiter.slice.status().message(), HasSubstr("ns/r"));
  EXPECT_THAT(waiter.slice.status().message(), HasSubstr("sender node 9 died"));
  EXPECT_FALSE(store.Contains("ns", "r"));
  EXPECT_EQ(store.Stats().used, 0u);
  // Aborting a sealed or client-written object is a no-op.
  MakeSealed(store, "s", 10);
  ASSERT_TRUE(store.Create("ns", "w", Meta(10), kAlice).ok());
  store.AbortReceiving("ns", "s", absl::CancelledError("x"));
  store.AbortReceiving("ns", "w", absl::CancelledError("x"));
  store.AbortReceiving("ns", "nope", absl::CancelledError("x"));
  EXPECT_TRUE(store.Contains("ns", "s"));
  EXPECT_TRUE(store.Contains("ns", "w"));
}

// ---- serve path ------------------------------------------------------------------------------------

TEST_F(ObjectStoreTest, SmallChunksOnlyForObjectsOfFewChunks) {
  ObjectStore store(64 * kKiB);
  MakeSealed(store, "few", 4096);         // 4096 chunks of one byte: allowed
  MakeSealed(store, "many", 4097 * 2);    // 4097 chunks of two bytes: too many
  ServeResult few, many, whole;
  store.ServeChunk("ns", "few", 1, 4095, few.Callback());
  store.ServeChunk("ns", "many", 2, 0, many.Callback());
  store.ServeChunk("ns", "many", kServeMinChunk, 0, whole.Callback());
  ASSERT_TRUE(few.called && many.called && whole.called);
  ASSERT_TRUE(few.slice.ok()) << few.slice.status();
  EXPECT_EQ(few.slice->len, 1u);
  EXPECT_EQ(many.slice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(many.slice.status().message(), HasSubstr("minimum"));
  EXPECT_TRUE(whole.slice.ok()) << whole.slice.status();
  for (ServeResult* r : {&few, &whole}) {
    if (r->slice.ok()) store.UnpinServe(*r->slice);
  }
}

TEST_F(ObjectStoreTest, ServeSealedChunks) {
  ObjectStore store(64 * kKiB);
  uint64_t off = MakeSealed(store, "s", 2500);
  ServeResult first, last, past;
  store.ServeChunk("ns", "s", 1000, 0, first.Callback());
  store.ServeChunk("ns", "s", 1000, 2, last.Callback());
  store.ServeChunk("ns", "s", 1000, 3, past.Callback());
  ASSERT_TRUE(first.called && last.called && past.called);
  ASSERT_TRUE(first.slice.ok()) << first.slice.status();
  EXPECT_EQ(first.slice->offset, off);
  EXPECT_EQ(first.slice->len, 1000u);
  ASSERT_TRUE(last.slice.ok());
  EXPECT_EQ(last.slice->offset, off + 2000);
  EXPECT_EQ(last.slice->len, 500u);
  EXPECT_EQ(past.slice.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(past.slice.status().message(), HasSubstr("chunk 3"));
  EXPECT_THAT(past.slice.status().message(), HasSubstr("ns/s"));
  // Any chunk size works for a sealed copy.
  ServeResult whole;
  store.ServeChunk("ns", "s", 1 << 20, 0, whole.Callback());
  ASSERT_TRUE(whole.slice.ok());
  EXPECT_EQ(whole.slice->len, 2500u);
  store.UnpinServe(*first.slice);
  store.UnpinServe(*last.slice);
  store.UnpinServe(*whole.slice);
  store.UnpinServe(ServeSlice{});   // empty slice: no-op
}

TEST_F(ObjectStoreTest, ServeErrors) {
  ObjectStore store(64 * kKiB);
  ServeResult missing;
  store.ServeChunk("ns", "nope", 1000, 0, missing.Callback());
  ASSERT_TRUE(missing.called);
  EXPECT_EQ(missing.slice.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.slice.status().message(), HasSubstr("ns/nope"));

  ASSERT_TRUE(store.Create("ns", "w", Meta(10), kAlice).ok());
  ServeResult writing;
  store.ServeChunk("ns", "w", 1000, 0, writing.Callback());
  ASSERT_TRUE(writing.called);
  EXPECT_EQ(writing.slice.status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(2000), 1000).ok());
  ServeResult wrong_chunk, out_of_range;
  store.ServeChunk("ns", "r", 500, 0, wrong_chunk.Callback());
  store.ServeChunk("ns", "r", 1000, 2, out_of_range.Callback());
  ASSERT_TRUE(wrong_chunk.called && out_of_range.called);
  EXPECT_EQ(wrong_chunk.slice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out_of_range.slice.status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(ObjectStoreTest, ServePartialCopyDefersUntilChunkLands) {
  ObjectStore store(64 * kKiB);
  absl::StatusOr<uint64_t> off = store.CreateReceiving("ns", "r", Meta(2500), 1000);
  ASSERT_TRUE(off.ok());
  store.MarkChunk("ns", "r", 0);
  ServeResult now, later, last;
  store.ServeChunk("ns", "r", 1000, 0, now.Callback());
  store.ServeChunk("ns", "r", 1000, 1, later.Callback());
  store.ServeChunk("ns", "r", 1000, 2, last.Callback());
  ASSERT_TRUE(now.called) << "a landed chunk is served at once";
  ASSERT_TRUE(now.slice.ok());
  EXPECT_EQ(now.slice->offset, *off);
  EXPECT_FALSE(later.called);
  EXPECT_FALSE(last.called);
  store.MarkChunk("ns", "r", 2);
  EXPECT_FALSE(later.called) << "another chunk landing does not answer chunk 1";
  ASSERT_TRUE(last.called);
  ASSERT_TRUE(last.slice.ok()) << last.slice.status();
  EXPECT_EQ(last.slice->offset, *off + 2000);
  EXPECT_EQ(last.slice->len, 500u);
  store.MarkChunk("ns", "r", 1);
  ASSERT_TRUE(later.called);
  ASSERT_TRUE(later.slice.ok());
  EXPECT_EQ(later.slice->offset, *off + 1000);
  EXPECT_EQ(later.slice->len, 1000u);
  ASSERT_TRUE(store.FinishReceiving("ns", "r").ok());
  for (ServeResult* r : {&now, &later, &last}) store.UnpinServe(*r->slice);
}

TEST_F(ObjectStoreTest, SeveralWaitersOnOneChunk) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(1000), 1000).ok());
  std::vector<ServeResult> results(5);
  for (ServeResult& r : results) store.ServeChunk("ns", "r", 1000, 0, r.Callback());
  store.MarkChunk("ns", "r", 0);
  for (ServeResult& r : results) {
    ASSERT_TRUE(r.called);
    ASSERT_TRUE(r.slice.ok());
    store.UnpinServe(*r.slice);
  }
}

TEST_F(ObjectStoreTest, DeleteFailsWaitersAsDeleted) {
  ObjectStore store(64 * kKiB);
  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(2000), 1000).ok());
  ServeResult waiter;
  store.ServeChunk("ns", "r", 1000, 1, waiter.Callback());
  ASSERT_TRUE(store.Delete("ns", "r").ok());
  ASSERT_TRUE(waiter.called);
  // A requester must learn the object is gone (NOT_FOUND, marked deleted), not retry it.
  EXPECT_EQ(waiter.slice.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(IsObjectDeleted(waiter.slice.status())) << waiter.slice.status();
  EXPECT_THAT(waiter.slice.status().message(), HasSubstr("ns/r"));
}

TEST_F(ObjectStoreTest, ServePinBlocksEvictionAndReuseUntilUnpinned) {
  ObjectStore store(2 * kKiB);
  std::vector<std::string> evicted;
  store.SetEvictionListener([&](const std::string&, const std::string& key) { evicted.push_back(key); });
  uint64_t a_off = MakeSealed(store, "a", kKiB);
  ServeResult served;
  store.ServeChunk("ns", "a", 512, 1, served.Callback());
  ASSERT_TRUE(served.slice.ok());
  EXPECT_EQ(store.Create("ns", "big", Meta(2 * kKiB), kAlice).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(evicted, IsEmpty()) << "an object being served is not evictable";
  store.UnpinServe(*served.slice);
  EXPECT_TRUE(store.Create("ns", "big", Meta(2 * kKiB), kAlice).ok());
  EXPECT_THAT(evicted, ElementsAre("a"));
  ASSERT_TRUE(store.Delete("ns", "big").ok());

  // Deleting an object while a slice is out keeps the block until UnpinServe.
  a_off = MakeSealed(store, "a", kKiB);
  ServeResult held;
  store.ServeChunk("ns", "a", kKiB, 0, held.Callback());
  ASSERT_TRUE(held.slice.ok());
  ASSERT_TRUE(store.Delete("ns", "a").ok());
  absl::StatusOr<uint64_t> other = store.Create("ns", "other", Meta(kKiB), kAlice);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(Overlap(*other, kKiB, a_off, kKiB));
  EXPECT_EQ(store.Create("ns", "more", Meta(1), kAlice).status().code(),
            absl::StatusCode::kResourceExhausted);
  store.UnpinServe(*held.slice);
  EXPECT_TRUE(store.Create("ns", "more", Meta(1), kAlice).ok());
}

TEST_F(ObjectStoreTest, ReceivedObjectBecomesEvictableAfterInternalUnpin) {
  ObjectStore store(kKiB);
  ASSERT_TRUE(store.CreateReceiving("ns", "r", Meta(kKiB), 512).ok());
  absl::StatusOr<PinnedObject> pin = store.PinInternal("ns", "r");
  ASSERT_TRUE(pin.ok());
  store.MarkChunk("ns", "r", 0);
  store.MarkChunk("ns", "r", 1);
  ASSERT_TRUE(store.FinishReceiving("ns", "r").ok());
  EXPECT_EQ(store.Create("ns", "x", Meta(1), kAlice).status().code(),
            absl::StatusCode::kResourceExhausted);
  store.Unpin(*pin);
  EXPECT_TRUE(store.Create("ns", "x", Meta(1), kAlice).ok());
  EXPECT_FALSE(store.Contains("ns", "r"));
}

// Many threads creating, sealing, pinning, serving and deleting: no crash, and the arena is
// empty at the end (run under TSan in the sanitizer build).
TEST_F(ObjectStoreTest, ConcurrentUseLeavesNoLeaks) {
  ObjectStore store(64 * kKiB);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const SessionId session = 10 + t;
      for (int i = 0; i < 300; ++i) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i % 7);
        if (!store.Create("ns", key, Meta(1000 + 64 * (i % 5)), session).ok()) continue;
        if (!store.Seal("ns", key, session).ok()) ++errors;
        absl::StatusOr<PinnedObject> pin = store.PinSealed("ns", key, session + 100);
        if (!pin.ok()) continue;   // evicted by another thread in between
        ServeResult served;
        store.ServeChunk("ns", key, 256, 1, served.Callback());
        if (served.slice.ok()) store.UnpinServe(*served.slice);
        if (i % 3 == 0) store.Delete("ns", key).IgnoreError();
        if (!store.Release("ns", key, session + 100).ok()) ++errors;
        if (i % 2 == 0) store.Delete("ns", key).IgnoreError();
      }
      store.EndSession(session);
      store.EndSession(session + 100);
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  for (const ListedLocal& o : store.List()) {
    EXPECT_EQ(o.pins, 0u) << o.key;
    ASSERT_TRUE(store.Delete(o.ns, o.key).ok());
  }
  EXPECT_EQ(store.Stats().used, 0u);
  EXPECT_EQ(store.Stats().objects, 0u);
}

}  // namespace
}  // namespace ferry::dataplane

// ---- drops of deleted incarnations ---------------------------------------------------------------

namespace ferry::dataplane {
namespace {

StoredMeta MetaInc(uint64_t size, uint64_t incarnation) {
  return StoredMeta{size, /*dtype=*/0, /*count=*/size, incarnation};
}

TEST(ObjectStoreDropTest, DropRemovesThatIncarnationAndRefusesLateCopies) {
  ObjectStore store(1 << 20);
  ASSERT_TRUE(store.CreateReceiving("ns", "k", MetaInc(4096, 7), 1024).ok());
  ServeResult waiter;
  store.ServeChunk("ns", "k", 1024, 2, waiter.Callback());
  EXPECT_FALSE(waiter.called);
  EXPECT_TRUE(store.Drop("ns", "k", 7));
  ASSERT_TRUE(waiter.called);
  EXPECT_EQ(waiter.slice.status().code(), absl::StatusCode::kNotFound) << waiter.slice.status();
  EXPECT_FALSE(store.Contains("ns", "k"));
  EXPECT_TRUE(store.IsDropped("ns", "k", 7));
  // A Get still in flight that tries to store incarnation 7 now is refused...
  absl::StatusOr<uint64_t> late = store.CreateReceiving("ns", "k", MetaInc(4096, 7), 1024);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(late.status().message(), HasSubstr("was deleted"));
  // ...but the key may be created again (a new incarnation), here or by a pull.
  EXPECT_TRUE(store.CreateReceiving("ns", "k", MetaInc(4096, 8), 1024).ok());
  // A drop of the old incarnation leaves the new one alone.
  EXPECT_FALSE(store.Drop("ns", "k", 7));
  EXPECT_TRUE(store.Contains("ns", "k"));
  // Incarnation 0 (unknown) drops whatever is there.
  EXPECT_TRUE(store.Drop("ns", "k", 0));
  EXPECT_FALSE(store.Contains("ns", "k"));
  EXPECT_FALSE(store.IsDropped("ns", "k", 0));
}

TEST(ObjectStoreDropTest, TombstonesAreBounded) {
  ObjectStore store(1 << 20);
  for (uint64_t i = 1; i <= ObjectStore::kTombstones + 10; ++i) store.Drop("ns", "k" + std::to_string(i), i);
  EXPECT_FALSE(store.IsDropped("ns", "k1", 1)) << "the oldest tombstones are forgotten";
  EXPECT_TRUE(store.IsDropped("ns", "k" + std::to_string(ObjectStore::kTombstones + 10), ObjectStore::kTombstones + 10));
}

}  // namespace
}  // namespace ferry::dataplane
