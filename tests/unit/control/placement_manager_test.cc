#include "control/placement/placement_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry::control::placement {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(10000);

PlacementRequest Req(std::string holder, std::vector<ResourceMap> bundles, Constraint c = Constraint::kNone,
                     int32_t priority = 0) {
  PlacementRequest r;
  r.holder = std::move(holder);
  r.alternatives.push_back({std::move(bundles), c, ""});
  r.priority = priority;
  r.deadline = kT0 + absl::Seconds(60);
  r.lease_ttl = absl::Seconds(30);
  return r;
}

class PlacementManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // rack a: 1 (gpu 4), 2 (gpu 4); rack b: 3 (gpu 4).
    ASSERT_TRUE(m_.AddNode(1, {{"rack", "a"}}, {{"gpu", 4}, {"mem", 100}}, kT0).ok());
    ASSERT_TRUE(m_.AddNode(2, {{"rack", "a"}}, {{"gpu", 4}, {"mem", 100}}, kT0).ok());
    ASSERT_TRUE(m_.AddNode(3, {{"rack", "b"}}, {{"gpu", 4}, {"mem", 100}}, kT0).ok());
  }
  int64_t Free(NodeId node, const std::string& r) { return m_.table().Free(node, m_.table().Find(r).value()); }
  int64_t FreeTotal(const std::string& r) {
    int64_t sum = 0;
    for (NodeId n : m_.table().NodeIds()) sum += Free(n, r);
    return sum;
  }
  Lease MustGrant(PlacementRequest r) {
    auto res = m_.Acquire(std::move(r), kT0);
    EXPECT_TRUE(res.ok()) << res.status();
    EXPECT_TRUE(res.ok() && res->lease.has_value()) << (res.ok() ? res->wait_reason : "");
    return res.ok() && res->lease ? *res->lease : Lease{};
  }
  RequestId MustQueue(PlacementRequest r, absl::Time now = kT0) {
    auto res = m_.Acquire(std::move(r), now);
    EXPECT_TRUE(res.ok()) << res.status();
    EXPECT_TRUE(res.ok() && !res->lease.has_value());
    return res.ok() ? res->queued : 0;
  }
  PlacementManager m_;
};

TEST_F(PlacementManagerTest, GrantsAndReleases) {
  Lease l = MustGrant(Req("alice", {{{"gpu", 3}}}));
  EXPECT_NE(l.id, 0u);
  EXPECT_EQ(l.holder, "alice");
  ASSERT_EQ(l.bundles.size(), 1u);
  EXPECT_EQ(FreeTotal("gpu"), 9);
  EXPECT_EQ(l.expiry, kT0 + absl::Seconds(30));
  auto released = m_.Release(l.id, "alice", kT0);
  ASSERT_TRUE(released.ok());
  EXPECT_TRUE(released->empty());
  EXPECT_EQ(FreeTotal("gpu"), 12);
  EXPECT_EQ(m_.Release(l.id, "alice", kT0).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PlacementManagerTest, ReleasingSomeoneElsesLeaseIsDenied) {
  Lease l = MustGrant(Req("alice", {{{"gpu", 1}}}));
  auto r = m_.Release(l.id, "mallory", kT0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(), HasSubstr("held by 'alice'"));
  EXPECT_EQ(m_.Renew(l.id, "mallory", kT0).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(m_.leases().Find(l.id), nullptr);
}

TEST_F(PlacementManagerTest, BadRequestsAreClearErrors) {
  PlacementRequest empty;
  empty.holder = "a";
  empty.deadline = kT0 + absl::Seconds(1);
  EXPECT_THAT(m_.Acquire(empty, kT0).status().message(), HasSubstr("empty"));
  PlacementRequest no_bundles = Req("a", {});
  EXPECT_EQ(m_.Acquire(no_bundles, kT0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m_.Acquire(Req("a", {{}}), kT0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m_.Acquire(Req("a", {{{"gpu", 0}}}), kT0).status().message(), HasSubstr("is 0"));
  EXPECT_THAT(m_.Acquire(Req("a", {{{"gpu", -2}}}), kT0).status().message(), HasSubstr("negative"));
  EXPECT_EQ(m_.Acquire(Req("", {{{"gpu", 1}}}), kT0).status().code(), absl::StatusCode::kInvalidArgument);
  PlacementRequest past = Req("a", {{{"gpu", 1}}});
  past.deadline = kT0;
  EXPECT_THAT(m_.Acquire(past, kT0).status().message(), HasSubstr("not after now"));
  PlacementRequest ttl = Req("a", {{{"gpu", 1}}});
  ttl.lease_ttl = absl::ZeroDuration();
  EXPECT_EQ(m_.Acquire(ttl, kT0).status().code(), absl::StatusCode::kInvalidArgument);
  auto unknown = m_.Acquire(Req("a", {{{"tpu", 1}}}), kT0);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown resource 'tpu'"));
  PlacementRequest label = Req("a", {{{"gpu", 1}}}, Constraint::kSameLabelValue);
  EXPECT_THAT(m_.Acquire(label, kT0).status().message(), HasSubstr("needs a label key"));
  PlacementRequest bad_constraint = Req("a", {{{"gpu", 1}}}, static_cast<Constraint>(9));
  EXPECT_THAT(m_.Acquire(bad_constraint, kT0).status().message(), HasSubstr("unknown constraint"));
  PlacementRequest bad_scoring = Req("a", {{{"gpu", 1}}});
  bad_scoring.scoring = static_cast<Scoring>(7);
  EXPECT_THAT(m_.Acquire(bad_scoring, kT0).status().message(), HasSubstr("unknown scoring"));
  PlacementRequest stray_label = Req("a", {{{"gpu", 1}}});
  stray_label.alternatives[0].label_key = "rack";
  EXPECT_EQ(m_.Acquire(stray_label, kT0).status().code(), absl::StatusCode::kInvalidArgument);
  PlacementRequest too_many = Req("a", std::vector<ResourceMap>(kMaxBundles + 1, ResourceMap{{"gpu", 1}}));
  EXPECT_THAT(m_.Acquire(too_many, kT0).status().message(), HasSubstr("above the limit"));
  EXPECT_EQ(m_.leases().size(), 0u);
  EXPECT_TRUE(m_.queue().empty());
}

TEST_F(PlacementManagerTest, NeverSatisfiableFailsAtOnceNamingTheDemand) {
  auto r = m_.Acquire(Req("a", {{{"gpu", 5}}}), kT0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("gpu=5"));
  auto four =
      m_.Acquire(Req("a", {{{"gpu", 1}}, {{"gpu", 1}}, {{"gpu", 1}}, {{"gpu", 1}}}, Constraint::kDifferentNodes), kT0);
  EXPECT_EQ(four.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(m_.queue().empty());
}

TEST_F(PlacementManagerTest, GangIsAllOrNothing) {
  Lease hold = MustGrant(Req("x", {{{"gpu", 3}}, {{"gpu", 3}}}, Constraint::kDifferentNodes));
  EXPECT_EQ(FreeTotal("gpu"), 6);
  // Three bundles of 2 on different nodes: two nodes have 1 free, one has 4: not now. Nothing
  // may be taken for the part that would fit.
  RequestId q = MustQueue(Req("y", {{{"gpu", 2}}, {{"gpu", 2}}, {{"gpu", 2}}}, Constraint::kDifferentNodes));
  EXPECT_EQ(FreeTotal("gpu"), 6);
  auto events = m_.Release(hold.id, "x", kT0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->granted.size(), 1u);
  EXPECT_EQ(events->granted[0].request, q);
  const Lease& g = events->granted[0].lease;
  EXPECT_EQ(g.holder, "y");
  std::set<NodeId> nodes;
  for (const LeaseBundle& b : g.bundles) nodes.insert(b.node);
  EXPECT_EQ(nodes.size(), 3u);
  EXPECT_EQ(FreeTotal("gpu"), 6);
}

TEST_F(PlacementManagerTest, ConstraintsHold) {
  Lease same = MustGrant(Req("a", {{{"gpu", 1}}, {{"gpu", 1}}}, Constraint::kSameNode));
  EXPECT_EQ(same.bundles[0].node, same.bundles[1].node);
  // Node 1 has 2 free: the first bundle packs there, the second must stay in rack a (node 2).
  PlacementRequest rack = Req("b", {{{"gpu", 2}}, {{"gpu", 2}}});
  rack.alternatives[0].constraint = Constraint::kSameLabelValue;
  rack.alternatives[0].label_key = "rack";
  Lease r = MustGrant(rack);
  EXPECT_EQ(*m_.table().Label(r.bundles[0].node, "rack"), *m_.table().Label(r.bundles[1].node, "rack"));
  EXPECT_NE(r.bundles[0].node, r.bundles[1].node);
}

TEST_F(PlacementManagerTest, FallsBackToTheFirstAlternativeThatFitsNow) {
  MustGrant(Req("x", {{{"gpu", 4}}}));  // node 1 full
  PlacementRequest r = Req("a", {{{"gpu", 4}}, {{"gpu", 4}}}, Constraint::kSameLabelValue);
  r.alternatives[0].label_key = "rack";  // rack a has only 4 free now
  r.alternatives.push_back({{{{"gpu", 4}}, {{"gpu", 4}}}, Constraint::kNone, ""});
  Lease l = MustGrant(r);
  EXPECT_EQ(l.alternative, 1u);
  // Preferred when it fits: everything free again on a fresh manager.
  PlacementManager fresh;
  ASSERT_TRUE(fresh.AddNode(1, {{"rack", "a"}}, {{"gpu", 4}}, kT0).ok());
  ASSERT_TRUE(fresh.AddNode(2, {{"rack", "a"}}, {{"gpu", 4}}, kT0).ok());
  auto g = fresh.Acquire(r, kT0);
  ASSERT_TRUE(g.ok() && g->lease);
  EXPECT_EQ(g->lease->alternative, 0u);
}

TEST_F(PlacementManagerTest, FailsOnlyWhenEveryAlternativeIsImpossible) {
  PlacementRequest r = Req("a", {{{"gpu", 8}}});
  r.alternatives.push_back({{{{"gpu", 9}}}, Constraint::kNone, ""});
  auto res = m_.Acquire(r, kT0);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(res.status().message(), HasSubstr("alternative 0"));
  EXPECT_THAT(res.status().message(), HasSubstr("alternative 1"));
  r.alternatives.push_back({{{{"gpu", 2}}}, Constraint::kNone, ""});
  Lease l = MustGrant(r);
  EXPECT_EQ(l.alternative, 2u);
}

TEST_F(PlacementManagerTest, HigherPriorityIsServedFirst) {
  Lease all = MustGrant(Req("x", {{{"gpu", 4}}, {{"gpu", 4}}, {{"gpu", 4}}}, Constraint::kDifferentNodes));
  RequestId low = MustQueue(Req("low", {{{"gpu", 4}}}, Constraint::kNone, 0));
  RequestId high = MustQueue(Req("high", {{{"gpu", 4}}}, Constraint::kNone, 9));
  EXPECT_THAT(m_.queue().InOrder(), ElementsAre(high, low));
  ASSERT_TRUE(m_.SetResource("gpu", 4, NodeSelector::Node(1), kT0).ok());  // no change in capacity
  auto ev = m_.Release(all.id, "x", kT0);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->granted.size(), 2u);
  EXPECT_EQ(ev->granted[0].request, high);
  EXPECT_EQ(ev->granted[1].request, low);
}

TEST_F(PlacementManagerTest, BigHeadIsNotStarvedBySmallLaterRequests) {
  Lease a = MustGrant(Req("x", {{{"gpu", 1}}}));  // 11 free: the gang of 12 waits
  RequestId big = MustQueue(Req("big", {{{"gpu", 4}}, {{"gpu", 4}}, {{"gpu", 4}}}));
  // A small request of the same priority that would fit now waits behind the big one...
  auto small = m_.Acquire(Req("small", {{{"gpu", 1}}}), kT0);
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->lease);
  EXPECT_THAT(small->wait_reason, HasSubstr("queued behind"));
  // ...but a request for other resources is not held back.
  Lease mem = MustGrant(Req("other", {{{"mem", 10}}}));
  auto ev = m_.Release(a.id, "x", kT0);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->granted.size(), 1u);
  EXPECT_EQ(ev->granted[0].request, big);
  EXPECT_EQ(m_.queue().size(), 1u);  // small still waits: nothing left
  // A higher-priority newcomer is not held back by lower waiters.
  auto urgent = m_.Acquire(Req("urgent", {{{"mem", 1}}}, Constraint::kNone, 5), kT0);
  ASSERT_TRUE(urgent.ok());
  EXPECT_TRUE(urgent->lease);
  (void)mem;
}

TEST_F(PlacementManagerTest, WaitersExpireAtTheirDeadline) {
  MustGrant(Req("x", {{{"gpu", 4}}, {{"gpu", 4}}, {{"gpu", 4}}}, Constraint::kDifferentNodes));
  PlacementRequest r = Req("a", {{{"gpu", 1}}});
  r.deadline = kT0 + absl::Seconds(5);
  RequestId id = MustQueue(r);
  EXPECT_EQ(m_.NextDeadline(), kT0 + absl::Seconds(5));
  EXPECT_TRUE(m_.Advance(kT0 + absl::Seconds(4)).empty());
  PlacementEvents ev = m_.Advance(kT0 + absl::Seconds(5));
  ASSERT_EQ(ev.failed.size(), 1u);
  EXPECT_EQ(ev.failed[0].request, id);
  EXPECT_EQ(ev.failed[0].holder, "a");
  EXPECT_EQ(ev.failed[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(m_.queue().empty());
}

TEST_F(PlacementManagerTest, CancelWithdrawsAndUnblocks) {
  Lease x = MustGrant(Req("x", {{{"gpu", 1}}}));
  RequestId big = MustQueue(Req("big", {{{"gpu", 4}}, {{"gpu", 4}}, {{"gpu", 4}}}));
  RequestId small = MustQueue(Req("small", {{{"gpu", 1}}}));
  EXPECT_EQ(m_.Cancel(big, "small", kT0).status().code(), absl::StatusCode::kPermissionDenied);
  auto ev = m_.Cancel(big, "big", kT0);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->granted.size(), 1u);
  EXPECT_EQ(ev->granted[0].request, small);
  EXPECT_EQ(m_.Cancel(big, "big", kT0).status().code(), absl::StatusCode::kNotFound);
  (void)x;
}

TEST_F(PlacementManagerTest, LeasesExpireUnlessRenewed) {
  Lease a = MustGrant(Req("a", {{{"gpu", 1}}}));
  Lease b = MustGrant(Req("b", {{{"gpu", 1}}}));
  auto renewed = m_.Renew(a.id, "a", kT0 + absl::Seconds(20));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(*renewed, kT0 + absl::Seconds(50));
  PlacementEvents ev = m_.Advance(kT0 + absl::Seconds(30));
  ASSERT_EQ(ev.lost.size(), 1u);
  EXPECT_EQ(ev.lost[0].lease, b.id);
  EXPECT_EQ(ev.lost[0].holder, "b");
  EXPECT_THAT(ev.lost[0].reason, HasSubstr("expired"));
  EXPECT_EQ(FreeTotal("gpu"), 11);
  EXPECT_EQ(m_.Renew(b.id, "b", kT0).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PlacementManagerTest, NodeDeathReleasesWholeLeasesAndTellsHolders) {
  Lease gang = MustGrant(Req("g", {{{"gpu", 2}}, {{"gpu", 2}}, {{"gpu", 2}}}, Constraint::kDifferentNodes));
  Lease solo = MustGrant(Req("s", {{{"gpu", 2}}}));
  const NodeId victim = solo.bundles[0].node;
  auto ev = m_.RemoveNode(victim, kT0);
  ASSERT_TRUE(ev.ok());
  std::set<std::string> told;
  for (const LostLease& l : ev->lost) told.insert(l.holder);
  EXPECT_EQ(told, (std::set<std::string>{"g", "s"}));
  EXPECT_EQ(m_.leases().size(), 0u);
  EXPECT_EQ(FreeTotal("gpu"), 8);  // the gang's bundles on the live nodes came back too
  EXPECT_FALSE(m_.table().HasNode(victim));
  EXPECT_EQ(m_.RemoveNode(victim, kT0).status().code(), absl::StatusCode::kNotFound);
  (void)gang;
}

TEST_F(PlacementManagerTest, ShrinkingMakesAWaiterImpossibleAndItFails) {
  MustGrant(Req("x", {{{"gpu", 4}}}));
  ASSERT_TRUE(m_.SetResource("slot", 2, NodeSelector::WithLabels({{"rack", "a"}}), kT0).ok());
  Lease s = MustGrant(Req("y", {{{"slot", 2}}}));
  RequestId q = MustQueue(Req("z", {{{"slot", 2}}, {{"slot", 2}}}));
  auto ev = m_.SetResource("slot", 0, NodeSelector::Node(s.bundles[0].node == 1 ? 2 : 1), kT0);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->failed.size(), 1u);
  EXPECT_EQ(ev->failed[0].request, q);
  EXPECT_EQ(ev->failed[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ev->failed[0].status.message(), HasSubstr("slot"));
  EXPECT_EQ(m_.SetResource("slot", 1, NodeSelector::WithLabels({{"rack", "zz"}}), kT0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(PlacementManagerTest, NewNodeServesWaiters) {
  MustGrant(Req("x", {{{"gpu", 4}}, {{"gpu", 4}}, {{"gpu", 4}}}, Constraint::kDifferentNodes));
  RequestId q = MustQueue(Req("a", {{{"gpu", 4}}}));
  auto ev = m_.AddNode(4, {}, {{"gpu", 4}}, kT0);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->granted.size(), 1u);
  EXPECT_EQ(ev->granted[0].request, q);
  EXPECT_EQ(ev->granted[0].lease.bundles[0].node, 4u);
}

TEST_F(PlacementManagerTest, QueueLimit) {
  PlacementManager small(PlacementManager::Options{1, 1});
  ASSERT_TRUE(small.AddNode(1, {}, {{"gpu", 1}}, kT0).ok());
  ASSERT_TRUE(small.Acquire(Req("a", {{{"gpu", 1}}}), kT0).ok());
  ASSERT_TRUE(small.Acquire(Req("b", {{{"gpu", 1}}}), kT0).ok());
  EXPECT_EQ(small.Acquire(Req("c", {{{"gpu", 1}}}), kT0).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(PlacementManagerTest, ClusterResourcesReportsCapacityAndAvailability) {
  MustGrant(Req("a", {{{"gpu", 3}}}, Constraint::kNone));
  std::vector<NodeResourcesView> v = m_.ClusterResources();
  ASSERT_EQ(v.size(), 3u);
  int64_t avail = 0;
  for (const auto& n : v) {
    EXPECT_EQ(n.resources.at("gpu").capacity, 4);
    avail += n.resources.at("gpu").available;
  }
  EXPECT_EQ(avail, 9);
}

// --- rebuild after a coordinator restart ---

class RebuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_.BeginRebuild(kT0 + absl::Seconds(10), kT0).ok());
    ASSERT_TRUE(m_.AddNode(1, {}, {{"gpu", 4}}, kT0).ok());
    ASSERT_TRUE(m_.AddNode(2, {}, {{"gpu", 4}}, kT0).ok());
  }
  static LeaseReport Report(LeaseId id, std::string holder, std::vector<std::pair<NodeId, ResourceMap>> bundles) {
    return LeaseReport{id, std::move(holder), 0, std::move(bundles), absl::Seconds(30)};
  }
  PlacementManager m_;
};

TEST_F(RebuildTest, RestoresReportedLeasesAndGrantsNothingNew) {
  ASSERT_TRUE(m_.Restore(Report(7, "a", {{1, {{"gpu", 3}}}}), kT0).ok());
  auto queued = m_.Acquire(Req("b", {{{"gpu", 4}}}), kT0);
  ASSERT_TRUE(queued.ok());
  EXPECT_FALSE(queued->lease);  // node 2 is free, but the rebuild is not over
  EXPECT_THAT(queued->wait_reason, HasSubstr("rebuilt"));
  // A holder of node 2 reports late but within the window: it keeps its lease.
  ASSERT_TRUE(m_.Restore(Report(9, "c", {{2, {{"gpu", 4}}}}), kT0 + absl::Seconds(5)).ok());
  PlacementEvents ev = m_.Advance(kT0 + absl::Seconds(10));
  EXPECT_FALSE(m_.rebuilding());
  EXPECT_TRUE(ev.granted.empty());  // nothing free for b: no double grant of node 2
  EXPECT_EQ(m_.queue().size(), 1u);
  auto rel = m_.Release(9, "c", kT0 + absl::Seconds(11));
  ASSERT_TRUE(rel.ok());
  ASSERT_EQ(rel->granted.size(), 1u);
  EXPECT_EQ(rel->granted[0].lease.bundles[0].node, 2u);
  EXPECT_GT(rel->granted[0].lease.id, 9u);  // new ids never reuse restored ones
}

TEST_F(RebuildTest, ConflictingAndBadReportsAreRejected) {
  ASSERT_TRUE(m_.Restore(Report(7, "a", {{1, {{"gpu", 3}}}}), kT0).ok());
  EXPECT_EQ(m_.Restore(Report(7, "z", {{2, {{"gpu", 1}}}}), kT0).code(), absl::StatusCode::kAlreadyExists);
  absl::Status over = m_.Restore(Report(8, "b", {{2, {{"gpu", 1}}}, {1, {{"gpu", 2}}}}), kT0);
  EXPECT_EQ(over.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(m_.table().Free(2, m_.table().Find("gpu").value()), 4);  // the partial bundle rolled back
  EXPECT_EQ(m_.Restore(Report(8, "b", {{5, {{"gpu", 1}}}}), kT0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m_.Restore(Report(8, "b", {{1, {{"tpu", 1}}}}), kT0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m_.Restore(Report(8, "b", {{1, {{"gpu", 0}}}}), kT0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m_.Restore(Report(8, "", {{1, {{"gpu", 1}}}}), kT0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m_.Restore(Report(0, "b", {{1, {{"gpu", 1}}}}), kT0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m_.BeginRebuild(kT0 + absl::Seconds(1), kT0).code(), absl::StatusCode::kFailedPrecondition);
  m_.EndRebuild(kT0);
  EXPECT_EQ(m_.Restore(Report(8, "b", {{1, {{"gpu", 1}}}}), kT0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m_.BeginRebuild(kT0, kT0).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RebuildTest, RequestsForResourcesNobodyReRegisteredFailWhenTheWindowCloses) {
  auto q = m_.Acquire(Req("a", {{{"tpu", 1}}}), kT0);  // unknown now, maybe not yet re-registered
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(q->lease);
  auto g = m_.Acquire(Req("b", {{{"gpu", 1}}}), kT0);
  ASSERT_TRUE(g.ok());
  PlacementEvents ev = m_.EndRebuild(kT0 + absl::Seconds(1));
  ASSERT_EQ(ev.failed.size(), 1u);
  EXPECT_EQ(ev.failed[0].request, q->queued);
  EXPECT_THAT(ev.failed[0].status.message(), HasSubstr("no node has 'tpu'"));
  ASSERT_EQ(ev.granted.size(), 1u);
  EXPECT_EQ(ev.granted[0].request, g->queued);
}

}  // namespace
}  // namespace ferry::control::placement
