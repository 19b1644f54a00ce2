// Pack fetches (ChunkServer serving several whole objects in one reply from its pack buffers)
// over the in-process transport: the bytes of every object back to back, objects that are
// created or land while the request waits (cut-through at object granularity), and the
// failures: a deleted object, a size mismatch, a node without pack buffers.
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "dataplane/engine/chunk_request.h"
#include "dataplane/engine/chunk_server.h"
#include "dataplane/engine/pack_buffers.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/inproc_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kArenaBytes = 1 << 20;
constexpr size_t kSlot = 64 << 10;
constexpr size_t kSlots = 4;

struct Node {
  NodeId id = 0;
  std::vector<uint8_t> arena = std::vector<uint8_t>(kArenaBytes, 0);
  std::vector<uint8_t> pack_memory = std::vector<uint8_t>(kSlot * kSlots, 0);
  std::unique_ptr<ObjectStore> store = std::make_unique<ObjectStore>(kArenaBytes);
  std::unique_ptr<Transport> transport;
  MemoryRegion arena_region, pack_region;
  std::unique_ptr<PackBuffers> packs;
  std::unique_ptr<ChunkServer> server;
};

class PackFetchTest : public ::testing::Test {
 protected:
  Node& AddNode(NodeId id, bool with_packs = true) {
    auto n = std::make_unique<Node>();
    n->id = id;
    n->transport = *InprocTransport::Create(fabric_, id);
    n->arena_region = *n->transport->RegisterMemory(MemoryKind::kHost, n->arena.data(), n->arena.size());
    n->pack_region = *n->transport->RegisterMemory(MemoryKind::kHost, n->pack_memory.data(), n->pack_memory.size());
    n->packs = std::make_unique<PackBuffers>(n->pack_region, kSlot, kSlots);
    ChunkServerOptions o;
    o.absent_wait = absl::Seconds(5);
    n->server = std::make_unique<ChunkServer>(n->store.get(), n->arena_region.id, o);
    if (with_packs) n->server->EnablePacks(n->packs.get(), n->arena.data());
    n->server->Attach(n->transport.get());
    for (auto& other : nodes_) {
      EXPECT_TRUE(n->transport->AddPeer(other->id, other->transport->LocalAddress()).ok());
      EXPECT_TRUE(other->transport->AddPeer(id, n->transport->LocalAddress()).ok());
    }
    nodes_.push_back(std::move(n));
    return *nodes_.back();
  }
  void TearDown() override {
    for (auto& n : nodes_) n->transport->Shutdown();
  }
  static void Put(Node& n, const std::string& key, uint64_t size, uint8_t seed) {
    absl::StatusOr<uint64_t> off = n.store->Create("ns", key, StoredMeta{size, 0, size}, 1);
    ASSERT_TRUE(off.ok()) << off.status();
    for (uint64_t i = 0; i < size; ++i) n.arena[*off + i] = static_cast<uint8_t>(seed + i * 7);
    ASSERT_TRUE(n.store->Seal("ns", key, 1).ok());
  }
  // Fetches `req` from `from` into `to`'s pack slot 0; returns the outcome once it completed.
  static absl::Status Fetch(Node& to, Node& from, const PackRequest& req, absl::Notification* started = nullptr) {
    absl::Notification done;
    absl::Status outcome;
    to.transport->Fetch(from.id, EncodePackRequest(req), to.packs->slice(0, req.bytes()), [&](absl::Status s) {
      outcome = s;
      done.Notify();
    });
    if (started != nullptr) started->Notify();
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    return outcome;
  }
  static PackRequest Req(std::vector<PackEntry> entries) {
    PackRequest r;
    r.ns = "ns";
    r.entries = std::move(entries);
    return r;
  }

  std::shared_ptr<InprocFabric> fabric_ = std::make_shared<InprocFabric>();
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(PackFetchTest, ServesTheObjectsBackToBack) {
  Node& a = AddNode(1);
  Node& b = AddNode(2);
  Put(a, "x", 100, 1);
  Put(a, "empty", 0, 0);
  Put(a, "y", 5000, 9);
  ASSERT_TRUE(Fetch(b, a, Req({{"x", 100}, {"empty", 0}, {"y", 5000}})).ok());
  const uint8_t* got = b.packs->data(0);
  for (uint64_t i = 0; i < 100; ++i) ASSERT_EQ(got[i], static_cast<uint8_t>(1 + i * 7)) << i;
  for (uint64_t i = 0; i < 5000; ++i) ASSERT_EQ(got[100 + i], static_cast<uint8_t>(9 + i * 7)) << i;
  EXPECT_EQ(a.server->packs_served(), 1u);
  EXPECT_EQ(a.server->bytes_served(), 5100u);
}

TEST_F(PackFetchTest, WaitsForAnObjectCreatedAndLandedWhileTheRequestIsHeld) {
  Node& a = AddNode(1);
  Node& b = AddNode(2);
  Put(a, "x", 64, 3);
  absl::Notification started;
  std::optional<absl::Status> outcome;
  std::thread fetch([&] { outcome = Fetch(b, a, Req({{"x", 64}, {"late", 300}}), &started); });
  started.WaitForNotification();
  absl::SleepFor(absl::Milliseconds(50));
  // The object arrives on `a` as a receiving copy with its own chunking, then lands.
  absl::StatusOr<uint64_t> off = a.store->CreateReceiving("ns", "late", StoredMeta{300, 0, 300}, 4096);
  ASSERT_TRUE(off.ok()) << off.status();
  for (uint64_t i = 0; i < 300; ++i) a.arena[*off + i] = static_cast<uint8_t>(i);
  a.store->MarkChunk("ns", "late", 0);
  fetch.join();
  ASSERT_TRUE(outcome.has_value());
  ASSERT_TRUE(outcome->ok()) << *outcome;
  EXPECT_EQ(b.packs->data(0)[64 + 299], static_cast<uint8_t>(299));
}

TEST_F(PackFetchTest, ADeletedObjectFailsThePackNamingIt) {
  Node& a = AddNode(1);
  Node& b = AddNode(2);
  Put(a, "x", 64, 3);
  Put(a, "gone", 64, 3);
  ASSERT_TRUE(a.store->Delete("ns", "gone").ok());
  absl::Status s = Fetch(b, a, Req({{"x", 64}, {"gone", 64}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("ns/gone was deleted on node 1"));
  EXPECT_EQ(a.server->packs_served(), 0u);
}

TEST_F(PackFetchTest, ASizeMismatchOrAnOversizedPackIsRefused) {
  Node& a = AddNode(1);
  Node& b = AddNode(2);
  Put(a, "x", 64, 3);
  absl::Status s = Fetch(b, a, Req({{"x", 65}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("has 64 bytes on node 1, the pack request says 65"));
  // Larger than the server's pack buffers (the destination slice is checked by the transport
  // too, so ask for a pack that fits the receiver's buffer but not the server's).
  PackRequest big = Req({{"x", kSlot + 1}});
  absl::Notification done;
  absl::Status outcome;
  b.transport->Fetch(a.id, EncodePackRequest(big), LocalSlice{b.pack_region.id, 0, kSlot + 1}, [&](absl::Status st) {
    outcome = st;
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(outcome.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outcome.message(), HasSubstr("larger than this node's pack buffers"));
}

TEST_F(PackFetchTest, ANodeWithoutPackBuffersSaysSo) {
  Node& a = AddNode(1, /*with_packs=*/false);
  Node& b = AddNode(2);
  Put(a, "x", 64, 3);
  absl::Status s = Fetch(b, a, Req({{"x", 64}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
}

TEST(PackBuffersTest, SlotsAreHandedOutOnceAndWaitersServedInOrder) {
  std::vector<uint8_t> mem(4 * 16);
  MemoryRegion region;
  region.id = 7;
  region.base = mem.data();
  region.length = mem.size();
  PackBuffers packs(region, 16, 2);
  std::optional<PackBuffers::Slot> s1 = packs.Acquire(absl::InfiniteFuture());
  std::optional<PackBuffers::Slot> s2 = packs.Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(s1 && s2);
  EXPECT_NE(*s1, *s2);
  EXPECT_FALSE(packs.Acquire(absl::Now() + absl::Milliseconds(10)).has_value());
  std::vector<int> order;
  packs.AcquireAsync([&](absl::StatusOr<PackBuffers::Slot> s) { order.push_back(s.ok() ? 1 : -1); });
  packs.AcquireAsync([&](absl::StatusOr<PackBuffers::Slot> s) { order.push_back(s.ok() ? 2 : -2); });
  EXPECT_TRUE(order.empty());
  packs.Release(*s1);
  packs.Release(*s2);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(packs.slice(1, 5).offset, 16u);
  EXPECT_EQ(packs.slice(1, 5).region, 7u);
  EXPECT_EQ(packs.data(1), mem.data() + 16);
}

}  // namespace
}  // namespace ferry::dataplane
