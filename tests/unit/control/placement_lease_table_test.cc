// LeaseTable and WaitQueue: the books PlacementManager keeps.
#include "control/placement/lease_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "control/placement/wait_queue.h"

namespace ferry::control::placement {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

Lease MakeLease(LeaseId id, std::string holder, std::vector<NodeId> nodes, absl::Duration ttl = absl::Seconds(10)) {
  Lease l{id, std::move(holder), 0, {}, ttl, kT0 + ttl};
  for (NodeId n : nodes) l.bundles.push_back({n, {{0, 1}}});
  return l;
}

TEST(LeaseTableTest, InsertFindRemoveByHolder) {
  LeaseTable t;
  const LeaseId id = t.NewId();
  EXPECT_EQ(id, 1u);
  ASSERT_TRUE(t.Insert(MakeLease(id, "alice", {5, 6})).ok());
  EXPECT_EQ(t.Insert(MakeLease(id, "bob", {5})).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(t.Insert(MakeLease(0, "bob", {5})).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_NE(t.Find(id), nullptr);
  EXPECT_THAT(t.OnNode(5), ElementsAre(id));
  auto denied = t.Remove(id, "bob");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(t.Find(id), nullptr);
  auto removed = t.Remove(id, "alice");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->bundles.size(), 2u);
  EXPECT_EQ(t.Find(id), nullptr);
  EXPECT_THAT(t.OnNode(5), IsEmpty());
  EXPECT_EQ(t.Remove(id, "alice").status().code(), absl::StatusCode::kNotFound);
}

TEST(LeaseTableTest, TwoBundlesOnOneNodeAreOneEntry) {
  LeaseTable t;
  ASSERT_TRUE(t.Insert(MakeLease(3, "a", {9, 9})).ok());
  EXPECT_THAT(t.OnNode(9), ElementsAre(3));
  ASSERT_TRUE(t.RemoveAny(3).ok());
  EXPECT_THAT(t.OnNode(9), IsEmpty());
}

TEST(LeaseTableTest, RestoredIdsPushNewIdsAbove) {
  LeaseTable t;
  ASSERT_TRUE(t.Insert(MakeLease(41, "a", {1})).ok());
  EXPECT_EQ(t.NewId(), 42u);
  LeaseTable t2(100);
  EXPECT_EQ(t2.NewId(), 100u);
}

TEST(LeaseTableTest, RenewMovesExpiryAndExpiredListsDueLeases) {
  LeaseTable t;
  ASSERT_TRUE(t.Insert(MakeLease(1, "a", {1}, absl::Seconds(10))).ok());
  ASSERT_TRUE(t.Insert(MakeLease(2, "b", {1}, absl::Seconds(5))).ok());
  EXPECT_EQ(t.NextExpiry(), kT0 + absl::Seconds(5));
  EXPECT_THAT(t.Expired(kT0 + absl::Seconds(4)), IsEmpty());
  EXPECT_THAT(t.Expired(kT0 + absl::Seconds(10)), ElementsAre(2, 1));
  auto renewed = t.Renew(2, "b", kT0 + absl::Seconds(4));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(*renewed, kT0 + absl::Seconds(9));
  EXPECT_THAT(t.Expired(kT0 + absl::Seconds(8)), IsEmpty());
  EXPECT_EQ(t.Renew(2, "a", kT0).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(t.Renew(7, "a", kT0).status().code(), absl::StatusCode::kNotFound);
}

Waiter MakeWaiter(RequestId id, int32_t priority, std::vector<ResourceId> resources,
                  absl::Time deadline = absl::InfiniteFuture()) {
  Waiter w;
  w.id = id;
  w.request.priority = priority;
  w.request.deadline = deadline;
  w.resolved.resources = std::move(resources);
  return w;
}

TEST(WaitQueueTest, OrdersByPriorityThenArrival) {
  WaitQueue q;
  q.Push(MakeWaiter(1, 0, {0}));
  q.Push(MakeWaiter(2, 5, {0}));
  q.Push(MakeWaiter(3, 0, {0}));
  q.Push(MakeWaiter(4, 5, {1}));
  EXPECT_THAT(q.InOrder(), ElementsAre(2, 4, 1, 3));
  ASSERT_TRUE(q.Remove(2));
  EXPECT_FALSE(q.Remove(2));
  EXPECT_THAT(q.InOrder(), ElementsAre(4, 1, 3));
}

TEST(WaitQueueTest, BlocksNewcomersOfNoHigherPriorityOnSharedResources) {
  WaitQueue q;
  q.Push(MakeWaiter(1, 3, {0, 2}));
  EXPECT_TRUE(q.Blocks({2}, 3));
  EXPECT_TRUE(q.Blocks({1, 2}, 0));
  EXPECT_FALSE(q.Blocks({2}, 4));  // higher priority goes first
  EXPECT_FALSE(q.Blocks({1}, 0));  // disjoint resources
  EXPECT_TRUE(q.Wants({0}));
  EXPECT_FALSE(q.Wants({1}));
  q.Remove(1);
  EXPECT_FALSE(q.Blocks({2}, 0));
  EXPECT_FALSE(q.Wants({0}));
}

TEST(WaitQueueTest, PopExpiredByDeadline) {
  WaitQueue q;
  q.Push(MakeWaiter(1, 0, {0}, kT0 + absl::Seconds(2)));
  q.Push(MakeWaiter(2, 0, {0}, kT0 + absl::Seconds(1)));
  EXPECT_EQ(q.NextDeadline(), kT0 + absl::Seconds(1));
  EXPECT_THAT(q.PopExpired(kT0 + absl::Seconds(1)), ElementsAre(2));
  EXPECT_EQ(q.size(), 2u);  // still queued until Remove
}

}  // namespace
}  // namespace ferry::control::placement
