// Puller + ChunkServer over the in-process transport: two or three nodes, each with its own
// ObjectStore over a heap "arena". Covers a plain pull, a cut-through chain and a sender that
// dies mid-pull (FaultyTransport).
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "dataplane/engine/chunk_server.h"
#include "dataplane/engine/chunk_sink.h"
#include "dataplane/engine/puller.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/faulty_transport.h"
#include "dataplane/transport/inproc_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kArenaBytes = 1 << 20;
constexpr uint32_t kChunk = 4096;
constexpr uint64_t kSize = 10 * kChunk + 123;   // 11 chunks, the last one short

uint8_t Pattern(uint64_t i) { return static_cast<uint8_t>((i * 2654435761u) >> 13); }

struct TestNode {
  NodeId id = 0;
  std::vector<uint8_t> arena = std::vector<uint8_t>(kArenaBytes, 0);
  std::unique_ptr<ObjectStore> store = std::make_unique<ObjectStore>(kArenaBytes);
  std::unique_ptr<Transport> transport;
  FaultyTransport* faulty = nullptr;   // set when `transport` is a FaultyTransport
  RegionId region = kNoRegion;   // the arena's registration with `transport`
  std::unique_ptr<ChunkServer> server;
  std::unique_ptr<Puller> puller;
};

class PullerServerTest : public ::testing::Test {
 protected:
  TestNode& AddNode(NodeId id, bool faulty = false, ChunkServerOptions server_options = {}) {
    auto node = std::make_unique<TestNode>();
    node->id = id;
    absl::StatusOr<std::unique_ptr<InprocTransport>> t = InprocTransport::Create(fabric_, id);
    EXPECT_TRUE(t.ok()) << t.status();
    if (faulty) {
      auto f = std::make_unique<FaultyTransport>(*std::move(t));
      node->faulty = f.get();
      node->transport = std::move(f);
    } else {
      node->transport = *std::move(t);
    }
    absl::StatusOr<MemoryRegion> region =
        node->transport->RegisterMemory(MemoryKind::kHost, node->arena.data(), node->arena.size());
    EXPECT_TRUE(region.ok()) << region.status();
    node->region = region.ok() ? region->id : kNoRegion;
    node->server = std::make_unique<ChunkServer>(node->store.get(), node->region, server_options);
    node->server->Attach(node->transport.get());
    node->puller = std::make_unique<Puller>(node->transport.get(), node->store.get());
    for (auto& other : nodes_) {
      EXPECT_TRUE(node->transport->AddPeer(other->id, other->transport->LocalAddress()).ok());
      EXPECT_TRUE(other->transport->AddPeer(id, node->transport->LocalAddress()).ok());
    }
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  void TearDown() override {
    // Transports first: their callbacks point into the stores and servers.
    for (auto& n : nodes_) n->transport->Shutdown();
  }

  // Creates "ns/obj" on `node` filled with the pattern and seals it.
  void MakeSource(TestNode& node, uint64_t size = kSize, const std::string& key = "obj") {
    absl::StatusOr<uint64_t> off = node.store->Create("ns", key, StoredMeta{size, 0, size}, 1);
    ASSERT_TRUE(off.ok()) << off.status();
    for (uint64_t i = 0; i < size; ++i) node.arena[*off + i] = Pattern(i);
    ASSERT_TRUE(node.store->Seal("ns", key, 1).ok());
  }

  // Creates the receiving copy on `node`; returns the spec to pull it from `sender`.
  PullSpec PrepareReceiver(TestNode& node, NodeId sender, uint64_t size = kSize,
                           const std::string& key = "obj") {
    absl::StatusOr<uint64_t> off =
        node.store->CreateReceiving("ns", key, StoredMeta{size, 0, size}, kChunk);
    EXPECT_TRUE(off.ok()) << off.status();
    PullSpec spec;
    spec.sender = sender;
    spec.ns = "ns";
    spec.key = key;
    spec.size = size;
    spec.chunk_size = kChunk;
    spec.window = 3;
    spec.dst = LocalSlice{node.region, off.value_or(0), size};
    spec.deadline = absl::Now() + absl::Seconds(30);
    return spec;
  }

  // Returns once every task queued on `t`'s thread before this call has run (the thread runs
  // tasks in order; a fetch from an unknown peer fails on that thread).
  static void Barrier(Transport& t) {
    absl::Notification done;
    t.Fetch(999, "barrier", LocalSlice{}, [&](absl::Status) { done.Notify(); });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  }

  static int64_t FirstMismatch(const uint8_t* p, uint64_t size) {
    for (uint64_t i = 0; i < size; ++i) {
      if (p[i] != Pattern(i)) return static_cast<int64_t>(i);
    }
    return -1;
  }

  std::shared_ptr<InprocFabric> fabric_ = std::make_shared<InprocFabric>();
  std::vector<std::unique_ptr<TestNode>> nodes_;
};

TEST_F(PullerServerTest, PullsAMultiChunkObjectFromASealedCopy) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2);
  MakeSource(a);
  PullSpec spec = PrepareReceiver(b, a.id);
  PullStats stats;
  absl::Status s = b.puller->Pull(spec, &stats);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(stats.chunks, 11u);
  EXPECT_EQ(stats.bytes, kSize);
  EXPECT_EQ(FirstMismatch((b.arena.data() + spec.dst.offset), kSize), -1);
  EXPECT_THAT(*b.store->MissingChunks("ns", "obj"), ::testing::IsEmpty());
  ASSERT_TRUE(b.store->FinishReceiving("ns", "obj").ok());
  EXPECT_EQ(a.server->chunks_served(), 11u);
  EXPECT_EQ(a.server->bytes_served(), kSize);
  EXPECT_EQ(a.server->requests_rejected(), 0u);
  // The server's "sent" callbacks (which return the serve pins) are posted to A's thread by
  // B's thread after B's completion ran: flush B's thread, then A's.
  Barrier(*b.transport);
  Barrier(*a.transport);
  // Every serve pin was returned: the source can be deleted and its space reused at once.
  ASSERT_TRUE(a.store->Delete("ns", "obj").ok());
  EXPECT_EQ(a.store->Stats().used, 0u);
}

// A sink that wraps CopySink, counts its calls, and can refuse one chunk (at Destination or
// at Landed), as a reduce sink may.
class RecordingSink final : public ChunkSink {
 public:
  RecordingSink(ObjectStore* store, const PullSpec& spec) : copy_(store, spec.ns, spec.key, spec.dst) {}
  absl::StatusOr<LocalSlice> Destination(uint32_t k, uint64_t first, uint64_t len) override {
    ++destinations;
    if (k == refuse_destination) return absl::ResourceExhaustedError("test sink: no slot");
    return copy_.Destination(k, first, len);
  }
  absl::Status Landed(uint32_t k) override {
    ++landed[k];
    if (k == refuse_landed) return absl::FailedPreconditionError("test sink: cannot combine");
    return copy_.Landed(k);
  }
  void Abandoned(uint32_t k) override { ++abandoned; }

  uint32_t refuse_destination = ~0u;
  uint32_t refuse_landed = ~0u;
  std::atomic<int> destinations{0};
  std::atomic<int> abandoned{0};
  std::atomic<int> landed[16] = {};

 private:
  CopySink copy_;
};

TEST_F(PullerServerTest, PullLandsEveryChunkThroughTheGivenSinkExactlyOnce) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2);
  MakeSource(a);
  PullSpec spec = PrepareReceiver(b, a.id);
  const LocalSlice object = spec.dst;
  RecordingSink sink(b.store.get(), spec);
  spec.sink = &sink;
  spec.dst = LocalSlice{};   // unused with a sink of our own
  PullStats stats;
  absl::Status s = b.puller->Pull(spec, &stats);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(stats.chunks, 11u);
  EXPECT_EQ(sink.destinations.load(), 11);
  for (int k = 0; k < 11; ++k) EXPECT_EQ(sink.landed[k].load(), 1) << "chunk " << k;
  EXPECT_EQ(sink.abandoned.load(), 0);
  EXPECT_EQ(FirstMismatch(b.arena.data() + object.offset, kSize), -1);
}

TEST_F(PullerServerTest, ASinkRefusingAChunkEndsThePullWithItsError) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2);
  MakeSource(a);
  {
    PullSpec spec = PrepareReceiver(b, a.id);
    RecordingSink sink(b.store.get(), spec);
    sink.refuse_landed = 4;
    spec.sink = &sink;
    PullStats stats;
    absl::Status s = b.puller->Pull(spec, &stats);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("chunk 4 of ns/obj from node 1: test sink: cannot combine"));
    EXPECT_EQ(sink.landed[4].load(), 1);
    // Returned only once no fetch was outstanding: every destination handed out has come back.
    EXPECT_EQ(sink.destinations.load(), [&] {
      int n = sink.abandoned.load();
      for (auto& l : sink.landed) n += l.load();
      return n;
    }());
    EXPECT_THAT(*b.store->MissingChunks("ns", "obj"), ::testing::Contains(4u));
  }
  {
    MakeSource(a, kSize, "obj2");
    PullSpec spec = PrepareReceiver(b, a.id, kSize, "obj2");
    RecordingSink sink(b.store.get(), spec);
    sink.refuse_destination = 0;
    spec.sink = &sink;
    PullStats stats;
    absl::Status s = b.puller->Pull(spec, &stats);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_EQ(sink.landed[0].load(), 0);
    EXPECT_EQ(sink.abandoned.load() + [&] {
      int n = 0;
      for (auto& l : sink.landed) n += l.load();
      return n;
    }(), sink.destinations.load() - 1);   // the refused chunk was never fetched
  }
}

TEST_F(PullerServerTest, PullsOnlyTheMissingChunks) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2);
  MakeSource(a);
  PullSpec spec = PrepareReceiver(b, a.id);
  // Chunks 0..4 already landed (from an earlier sender).
  for (uint32_t k = 0; k < 5; ++k) {
    std::memcpy((b.arena.data() + spec.dst.offset) + k * kChunk, a.arena.data() + k * kChunk, kChunk);
    b.store->MarkChunk("ns", "obj", k);
  }
  PullStats stats;
  ASSERT_TRUE(b.puller->Pull(spec, &stats).ok());
  EXPECT_EQ(stats.chunks, 6u);
  EXPECT_EQ(a.server->chunks_served(), 6u);
  EXPECT_EQ(FirstMismatch((b.arena.data() + spec.dst.offset), kSize), -1);
}

TEST_F(PullerServerTest, MissingObjectOnTheSenderFailsNamingItOnceTheWaitIsOver) {
  TestNode& a = AddNode(1, false, ChunkServerOptions{absl::Milliseconds(50)});
  TestNode& b = AddNode(2);
  PullSpec spec = PrepareReceiver(b, a.id);
  PullStats stats;
  absl::Status s = b.puller->Pull(spec, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_FALSE(IsObjectDeleted(s)) << s;   // never created is not deleted: try another sender
  EXPECT_THAT(s.message(), HasSubstr("from node 1"));
  EXPECT_THAT(s.message(), HasSubstr("ns/obj"));
  EXPECT_GT(a.server->requests_rejected(), 0u);
  EXPECT_GT(a.server->requests_held(), 0u);
  // The pull fails on the first held request's expiry; the others the puller had in flight
  // expire on the server's timer moments later (50 ms after they arrived). None may stay.
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (a.store->Stats().absent_waiters != 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(a.store->Stats().absent_waiters, 0u);
}

TEST_F(PullerServerTest, CutThroughFromAPartialCopyFedByHand) {
  TestNode& b = AddNode(2);
  TestNode& c = AddNode(3);
  // B is receiving (from nowhere yet); C pulls from B and must wait chunk by chunk.
  PullSpec b_spec = PrepareReceiver(b, /*sender=*/1);
  PullSpec c_spec = PrepareReceiver(c, b.id);
  std::optional<absl::Status> c_result;
  PullStats c_stats;
  std::thread c_thread([&] { c_result = c.puller->Pull(c_spec, &c_stats); });
  // Land B's chunks out of order; each MarkChunk answers C's waiting request, if any.
  for (uint32_t k : {2u, 0u, 1u, 10u, 3u, 4u, 5u, 9u, 8u, 7u, 6u}) {
    const uint64_t first = uint64_t{k} * kChunk;
    const uint64_t len = std::min<uint64_t>(kChunk, kSize - first);
    for (uint64_t i = 0; i < len; ++i) (b.arena.data() + b_spec.dst.offset)[first + i] = Pattern(first + i);
    b.store->MarkChunk("ns", "obj", k);
  }
  c_thread.join();
  ASSERT_TRUE(c_result.has_value());
  ASSERT_TRUE(c_result->ok()) << *c_result;
  EXPECT_EQ(FirstMismatch((c.arena.data() + c_spec.dst.offset), kSize), -1);
  EXPECT_EQ(b.server->chunks_served(), 11u);
  ASSERT_TRUE(b.store->FinishReceiving("ns", "obj").ok());
  ASSERT_TRUE(c.store->FinishReceiving("ns", "obj").ok());
}

TEST_F(PullerServerTest, ThreeNodeChainPipelines) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2);
  TestNode& c = AddNode(3);
  MakeSource(a);
  PullSpec b_spec = PrepareReceiver(b, a.id);
  PullSpec c_spec = PrepareReceiver(c, b.id);
  std::optional<absl::Status> b_result, c_result;
  PullStats b_stats, c_stats;
  // C starts first: all its requests wait at B until B's chunks land.
  std::thread c_thread([&] { c_result = c.puller->Pull(c_spec, &c_stats); });
  std::thread b_thread([&] { b_result = b.puller->Pull(b_spec, &b_stats); });
  b_thread.join();
  ASSERT_TRUE(b_result.has_value() && b_result->ok()) << b_result.value_or(absl::OkStatus());
  ASSERT_TRUE(b.store->FinishReceiving("ns", "obj").ok());
  c_thread.join();
  ASSERT_TRUE(c_result.has_value() && c_result->ok()) << c_result.value_or(absl::OkStatus());
  EXPECT_EQ(FirstMismatch((b.arena.data() + b_spec.dst.offset), kSize), -1);
  EXPECT_EQ(FirstMismatch((c.arena.data() + c_spec.dst.offset), kSize), -1);
  EXPECT_EQ(b.server->chunks_served(), 11u);
  ASSERT_TRUE(c.store->FinishReceiving("ns", "obj").ok());
  EXPECT_EQ(b.store->Stats().pinned, 0u);
}

TEST_F(PullerServerTest, SenderDyingMidPullFailsNamingItAndLeavesNothingInFlight) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2, /*faulty=*/true);
  MakeSource(a);
  PullSpec spec = PrepareReceiver(b, a.id);
  b.faulty->FailPeerAfterBytes(a.id, 3 * kChunk);
  PullStats stats;
  absl::Status s = b.puller->Pull(spec, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("from node 1"));
  EXPECT_THAT(s.message(), HasSubstr("ns/obj"));
  EXPECT_GE(stats.chunks, 3u);
  EXPECT_LT(stats.chunks, 11u);

  // Nothing is in flight: a barrier operation on B's transport thread (FIFO) completes, and
  // no other completion happened after Pull returned.
  const TransportStats before = b.faulty->inner().Stats();
  absl::Notification barrier;
  b.transport->Fetch(999, "x", LocalSlice{}, [&](absl::Status st) {
    EXPECT_FALSE(st.ok());
    barrier.Notify();
  });
  ASSERT_TRUE(barrier.WaitForNotificationWithTimeout(absl::Seconds(30)));
  const TransportStats after = b.faulty->inner().Stats();
  EXPECT_EQ(after.fetches, before.fetches);
  EXPECT_EQ(after.failures, before.failures + 1) << "only the barrier completed after Pull";

  // The chunks that did land are recorded; the rest are missing, and a retry from a healed
  // sender finishes the copy.
  absl::StatusOr<std::vector<uint32_t>> missing = b.store->MissingChunks("ns", "obj");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->size(), 11u - stats.chunks);
  ASSERT_TRUE(b.faulty->HealPeer(a.id).ok());
  PullStats retry;
  absl::Status again = b.puller->Pull(spec, &retry);
  ASSERT_TRUE(again.ok()) << again;
  EXPECT_EQ(FirstMismatch((b.arena.data() + spec.dst.offset), kSize), -1);
  ASSERT_TRUE(b.store->FinishReceiving("ns", "obj").ok());
}

TEST_F(PullerServerTest, AbortingThePartialCopyFailsDownstreamPullers) {
  TestNode& b = AddNode(2, false, ChunkServerOptions{absl::Milliseconds(50)});
  TestNode& c = AddNode(3);
  PullSpec b_spec = PrepareReceiver(b, /*sender=*/1);
  PullSpec c_spec = PrepareReceiver(c, b.id);
  (void)b_spec;
  std::optional<absl::Status> c_result;
  PullStats c_stats;
  std::thread c_thread([&] { c_result = c.puller->Pull(c_spec, &c_stats); });
  // Abort B's copy; C's outstanding (or later) requests fail. Requests arriving after the
  // abort get NOT_FOUND, earlier ones ABORTED: either way the pull fails.
  b.store->AbortReceiving("ns", "obj", absl::UnavailableError("sender died"));
  c_thread.join();
  ASSERT_TRUE(c_result.has_value());
  EXPECT_FALSE(c_result->ok());
  EXPECT_TRUE(c_result->code() == absl::StatusCode::kAborted ||
              c_result->code() == absl::StatusCode::kNotFound)
      << *c_result;
  EXPECT_THAT(c_result->message(), HasSubstr("from node 2"));
}

}  // namespace
}  // namespace ferry::dataplane

namespace ferry::dataplane {
namespace {

// A pull on a transport that has been shut down must still return (an error, at the latest
// at its deadline): the transport drops operations posted after Shutdown without running
// their Done, so the puller must not wait for those forever.
TEST_F(PullerServerTest, PullOnAShutDownTransportReturnsByItsDeadline) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2);
  MakeSource(a);
  PullSpec spec = PrepareReceiver(b, a.id);
  spec.deadline = absl::Now() + absl::Milliseconds(100);
  b.transport->Shutdown();
  auto finished = std::make_shared<absl::Notification>();
  auto result = std::make_shared<absl::Status>();
  Puller* puller = b.puller.get();
  std::thread([finished, result, puller, spec] {
    PullStats stats;
    *result = puller->Pull(spec, &stats);
    finished->Notify();
  }).detach();
  if (!finished->WaitForNotificationWithTimeout(absl::Seconds(3))) {
    // The detached thread is stuck inside Pull forever; leak the node so it never touches
    // freed memory, and report.
    nodes_.back().release();
    nodes_.pop_back();
    FAIL() << "Pull did not return within 2.9 s after its 100 ms deadline on a shut-down transport";
  }
  EXPECT_FALSE(result->ok());
}

}  // namespace
}  // namespace ferry::dataplane

namespace ferry::dataplane {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) for a condition that has no event to wait on; false if it never held.
template <typename F>
bool Eventually(F condition) {
  for (int i = 0; i < 30000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return condition();
}

// Feeds every chunk of a receiving "ns/<key>" on `node` with the pattern, in order.
void LandAll(TestNode& node, uint8_t* dst, const std::string& key = "obj") {
  for (uint32_t k = 0; k * uint64_t{kChunk} < kSize; ++k) {
    const uint64_t first = uint64_t{k} * kChunk;
    const uint64_t len = std::min<uint64_t>(kChunk, kSize - first);
    for (uint64_t i = 0; i < len; ++i) dst[first + i] = Pattern(first + i);
    node.store->MarkChunk("ns", key, k);
  }
}

// Issue 13.1: Pull used to give up draining 2 s after its deadline and return while fetches
// were still outstanding (their bytes could land in a block already reused). Completions are
// delayed past that: Pull must return only after every one of them has run.
TEST_F(PullerServerTest, PullReturnsOnlyAfterEveryDelayedCompletionHasRun) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2, /*faulty=*/true);
  MakeSource(a);
  PullSpec spec = PrepareReceiver(b, a.id);
  b.faulty->SetCompletionDelay(2500ms);   // longer than the old 2 s drain after the deadline
  spec.deadline = absl::Now() + absl::Milliseconds(100);
  PullStats stats;
  absl::Status s = b.puller->Pull(spec, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(b.faulty->outstanding(), 0u) << "Pull returned while fetches were outstanding";
  // The deadline did not cost the peer: it is still known, and the next pull finishes.
  EXPECT_TRUE(b.transport->HasPeer(a.id));
  b.faulty->SetCompletionDelay(0us);
  spec.deadline = absl::Now() + absl::Seconds(30);
  ASSERT_TRUE(b.puller->Pull(spec, &stats).ok());
  EXPECT_EQ(FirstMismatch((b.arena.data() + spec.dst.offset), kSize), -1);
}

// Issue 12.7: one pull reaching its deadline removed the peer, failing every other pull's
// fetches from it. Two pulls from one slow sender; the one whose deadline passes ends alone.
TEST_F(PullerServerTest, DeadlineOfOnePullLeavesOtherPullsFromTheSameSenderAlone) {
  TestNode& a = AddNode(1);
  TestNode& b = AddNode(2, /*faulty=*/true);
  MakeSource(a, kSize, "slow");
  MakeSource(a, kSize, "late");
  PullSpec slow = PrepareReceiver(b, a.id, kSize, "slow");
  PullSpec late = PrepareReceiver(b, a.id, kSize, "late");
  b.faulty->SetCompletionDelay(200ms);   // each completion: 11 chunks, window 3 take >= 4 rounds
  std::optional<absl::Status> slow_result;
  PullStats slow_stats;
  std::thread slow_thread([&] { slow_result = b.puller->Pull(slow, &slow_stats); });
  ASSERT_TRUE(Eventually([&] { return b.faulty->outstanding() > 0; }));
  late.deadline = absl::Now();   // issues its window, then finds its deadline passed
  PullStats late_stats;
  absl::Status late_result = b.puller->Pull(late, &late_stats);
  EXPECT_EQ(late_result.code(), absl::StatusCode::kDeadlineExceeded) << late_result;
  slow_thread.join();
  ASSERT_TRUE(slow_result.has_value());
  ASSERT_TRUE(slow_result->ok()) << *slow_result;
  EXPECT_EQ(FirstMismatch((b.arena.data() + slow.dst.offset), kSize), -1);
  EXPECT_TRUE(b.transport->HasPeer(a.id));
}

// Issue 13.3: a receiver can reach its sender before the sender has created its receiving
// copy. The request waits for the creation instead of failing NOT_FOUND (which node.cc used
// to retry with hundreds of 250 us sleeps).
TEST_F(PullerServerTest, FetchForAnObjectNotCreatedYetIsServedOnceItIs) {
  TestNode& a = AddNode(1, false, ChunkServerOptions{absl::Seconds(30)});
  TestNode& b = AddNode(2);
  PullSpec spec = PrepareReceiver(b, a.id);
  std::optional<absl::Status> result;
  PullStats stats;
  std::thread puller([&] { result = b.puller->Pull(spec, &stats); });
  ASSERT_TRUE(Eventually([&] { return a.server->requests_held() > 0; }))
      << "the request for an object not created yet was not held";
  // Now A creates its receiving copy and its chunks land (as from its own sender).
  absl::StatusOr<uint64_t> off = a.store->CreateReceiving("ns", "obj", StoredMeta{kSize, 0, kSize}, kChunk);
  ASSERT_TRUE(off.ok()) << off.status();
  LandAll(a, a.arena.data() + *off);
  puller.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << *result;
  EXPECT_EQ(FirstMismatch((b.arena.data() + spec.dst.offset), kSize), -1);
  EXPECT_EQ(a.store->Stats().absent_waiters, 0u);
}

// Issue 12.6 (sender side): deleting the sender's copy fails the fetches it holds at once with
// NOT_FOUND "was deleted on node N" (IsObjectDeleted: the Get ends rather than re-planning),
// and fetches arriving after the delete too (not held for a creation that will not come).
TEST_F(PullerServerTest, DeletingTheSendersCopyFailsHeldAndLaterFetchesAsDeleted) {
  TestNode& b = AddNode(2, false, ChunkServerOptions{absl::Seconds(30)});
  TestNode& c = AddNode(3);
  TestNode& d = AddNode(4);
  PullSpec b_spec = PrepareReceiver(b, /*sender=*/1);   // a partial copy; nothing lands
  (void)b_spec;
  PullSpec c_spec = PrepareReceiver(c, b.id);
  std::optional<absl::Status> c_result;
  PullStats c_stats;
  std::thread c_thread([&] { c_result = c.puller->Pull(c_spec, &c_stats); });
  ASSERT_TRUE(Eventually([&] { return b.store->Stats().chunk_waiters > 0; }));
  ASSERT_TRUE(b.store->Delete("ns", "obj").ok());
  c_thread.join();
  ASSERT_TRUE(c_result.has_value());
  EXPECT_EQ(c_result->code(), absl::StatusCode::kNotFound) << *c_result;
  EXPECT_TRUE(IsObjectDeleted(*c_result)) << *c_result;
  EXPECT_THAT(c_result->message(), HasSubstr("was deleted on node 2"));
  EXPECT_THAT(c_result->message(), HasSubstr("ns/obj"));

  PullSpec d_spec = PrepareReceiver(d, b.id);
  PullStats d_stats;
  absl::Status later = d.puller->Pull(d_spec, &d_stats);
  EXPECT_TRUE(IsObjectDeleted(later)) << later;
  EXPECT_THAT(later.message(), HasSubstr("was deleted on node 2"));
}

// Issue 12.6 (receiver side): a Drop deleting our own receiving copy mid-pull ends the pull
// at once with NOT_FOUND, its fetches cancelled and completed.
TEST_F(PullerServerTest, DeletingOurReceivingCopyEndsThePullAtOnce) {
  TestNode& b = AddNode(2);
  TestNode& c = AddNode(3, /*faulty=*/true);
  PullSpec b_spec = PrepareReceiver(b, /*sender=*/1);   // never lands: C's fetches wait at B
  (void)b_spec;
  PullSpec c_spec = PrepareReceiver(c, b.id);
  std::optional<absl::Status> c_result;
  PullStats c_stats;
  std::thread c_thread([&] { c_result = c.puller->Pull(c_spec, &c_stats); });
  ASSERT_TRUE(Eventually([&] { return c.faulty->outstanding() > 0; }));
  ASSERT_TRUE(c.store->Delete("ns", "obj").ok());
  c_thread.join();
  ASSERT_TRUE(c_result.has_value());
  EXPECT_EQ(c_result->code(), absl::StatusCode::kNotFound) << *c_result;
  EXPECT_TRUE(IsObjectDeleted(*c_result)) << *c_result;
  EXPECT_THAT(c_result->message(), HasSubstr("receiving copy"));
  EXPECT_EQ(c.faulty->outstanding(), 0u);
  // B's store still holds C's requests as chunk waiters; they go with B's copy.
  b.store->AbortReceiving("ns", "obj", absl::CancelledError("test over"));
}

}  // namespace
}  // namespace ferry::dataplane
