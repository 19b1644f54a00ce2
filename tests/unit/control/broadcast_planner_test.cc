// Tests of control/planner/broadcast_planner.h: chain and tree formation, slot accounting,
// sender failure, node removal, and a randomized invariant check.
#include "control/planner/broadcast_planner.h"

#include <map>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::control {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

NodeId MustAttach(BroadcastPlanner& p, NodeId receiver,
                  const absl::flat_hash_set<NodeId>& exclude = {}) {
  absl::StatusOr<NodeId> s = p.Attach(receiver, exclude);
  EXPECT_TRUE(s.ok()) << "attach " << receiver << ": " << s.status();
  return s.value_or(0);
}

// Checks the planner's structural invariants; returns a description of the first violation.
std::string CheckInvariants(const BroadcastPlanner& p) {
  std::map<NodeId, uint32_t> attached;
  for (const auto& [id, c] : p.copies()) {
    if (c.complete && c.upstream != 0) {
      return "complete copy " + std::to_string(id) + " has an upstream";
    }
    if (c.upstream != 0) {
      if (!p.HasCopy(c.upstream)) {
        return "copy " + std::to_string(id) + " pulls from " + std::to_string(c.upstream) +
               ", which has no copy";
      }
      if (c.upstream == id) return "copy " + std::to_string(id) + " pulls from itself";
      ++attached[c.upstream];
    }
  }
  for (const auto& [id, c] : p.copies()) {
    if (c.serving != attached[id]) {
      return "copy " + std::to_string(id) + " serving " + std::to_string(c.serving) + " but " +
             std::to_string(attached[id]) + " copies pull from it";
    }
    if (c.serving > p.fanout()) {
      return "copy " + std::to_string(id) + " serves " + std::to_string(c.serving) +
             " > fanout " + std::to_string(p.fanout());
    }
    // No cycles: following upstream ends within copies().size() hops.
    NodeId node = id;
    size_t hops = 0;
    while (node != 0) {
      if (++hops > p.copies().size() + 1) return "cycle through " + std::to_string(id);
      node = p.copies().at(node).upstream;
    }
  }
  return "";
}

TEST(BroadcastPlannerTest, FanoutOneFormsAChainInArrivalOrder) {
  BroadcastPlanner p(1);
  p.AddComplete(10);
  // Arrival order deliberately not sorted by id.
  EXPECT_EQ(MustAttach(p, 5), 10u);
  EXPECT_EQ(MustAttach(p, 30), 5u);
  EXPECT_EQ(MustAttach(p, 2), 30u);
  EXPECT_EQ(MustAttach(p, 20), 2u);
  EXPECT_EQ(p.RootedDepth(20), 4u);
  EXPECT_EQ(p.RootedDepth(10), 0u);
  EXPECT_EQ(p.complete_copies(), 1u);
  EXPECT_EQ(p.partial_copies(), 4u);
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, FanoutKFormsATree) {
  BroadcastPlanner p(2);
  p.AddComplete(1);
  EXPECT_EQ(MustAttach(p, 2), 1u);
  EXPECT_EQ(MustAttach(p, 3), 1u);
  // The root is full: next receivers go one level down, spread across the level.
  std::map<NodeId, int> children;
  for (NodeId r = 4; r <= 7; ++r) ++children[MustAttach(p, r)];
  EXPECT_EQ(children[2], 2);
  EXPECT_EQ(children[3], 2);
  for (NodeId r = 4; r <= 7; ++r) EXPECT_EQ(p.RootedDepth(r), 2u) << r;
  // Depth 3 next.
  NodeId s = MustAttach(p, 8);
  EXPECT_GE(s, 4u);
  EXPECT_LE(s, 7u);
  EXPECT_EQ(p.RootedDepth(8), 3u);
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, FanoutZeroMeansOne) {
  BroadcastPlanner p(0);
  EXPECT_EQ(p.fanout(), 1u);
  p.set_fanout(0);
  EXPECT_EQ(p.fanout(), 1u);
}

TEST(BroadcastPlannerTest, CompletedFreesTheSlotAndCompleteCopiesArePreferred) {
  BroadcastPlanner p(1);
  p.AddComplete(1);
  EXPECT_EQ(MustAttach(p, 2), 1u);
  EXPECT_EQ(MustAttach(p, 3), 2u);   // chain 1 -> 2 -> 3
  p.Completed(2);
  EXPECT_TRUE(p.IsComplete(2));
  EXPECT_EQ(p.copies().at(1).serving, 0u) << "2's slot on 1 is free";
  EXPECT_EQ(p.copies().at(2).serving, 1u) << "2 still serves 3";
  // 4 goes to a complete copy (depth 0) with a free slot: 1, not the partial 3.
  EXPECT_EQ(MustAttach(p, 4), 1u);
  // Now 1 and 2 are busy: the best partial copy (3 at depth 1 via 2, or 4) takes 5.
  NodeId s5 = MustAttach(p, 5);
  EXPECT_TRUE(s5 == 3 || s5 == 4) << s5;
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, AttachErrors) {
  BroadcastPlanner p(1);
  absl::StatusOr<NodeId> none = p.Attach(7);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(p.HasCopy(7)) << "a failed attach leaves no copy";

  p.AddComplete(1);
  EXPECT_EQ(p.Attach(1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MustAttach(p, 2), 1u);
  // 1 is busy, 2 is the only other copy but 3 excludes it.
  absl::StatusOr<NodeId> busy = p.Attach(3, {2});
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(p.HasCopy(3));
  // Excluding the only copy.
  BroadcastPlanner q(4);
  q.AddComplete(1);
  EXPECT_EQ(q.Attach(2, {1}).status().code(), absl::StatusCode::kUnavailable);
  // Only the receiver's own copy exists.
  BroadcastPlanner r(1);
  r.AddComplete(1);
  MustAttach(r, 2);
  r.RemoveNode(1);
  EXPECT_EQ(r.Attach(2).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, UnavailableWhenAllBusy) {
  BroadcastPlanner p(2);
  p.AddComplete(1);
  MustAttach(p, 2);
  MustAttach(p, 3);
  // With 2 and 3 excluded (e.g. they failed this receiver before), nothing is free.
  absl::StatusOr<NodeId> r = p.Attach(4, {2, 3});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  p.Completed(2);
  EXPECT_EQ(MustAttach(p, 4, {2, 3}), 1u) << "2's completion freed a slot on 1";
}

TEST(BroadcastPlannerTest, ReattachAfterSenderFailureNeverPicksItsOwnSubtree) {
  BroadcastPlanner p(1);
  p.AddComplete(1);          // a
  MustAttach(p, 2);          // b <- a
  MustAttach(p, 3);          // c <- b
  MustAttach(p, 4);          // d <- c
  // b's sender failed; b keeps its partial copy.
  EXPECT_THAT(p.Detach(2, /*keep_partial=*/true), IsEmpty());
  EXPECT_TRUE(p.HasCopy(2));
  EXPECT_EQ(p.copies().at(1).serving, 0u);
  EXPECT_EQ(p.RootedDepth(2), BroadcastPlanner::kUnrooted);
  EXPECT_EQ(p.RootedDepth(4), BroadcastPlanner::kUnrooted);
  // With a excluded (it just failed b), the only candidates are c and d, both below b.
  absl::StatusOr<NodeId> r = p.Attach(2, {1});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable)
      << "picked " << r.value_or(0) << ": a cycle";
  EXPECT_EQ(CheckInvariants(p), "");
  EXPECT_EQ(MustAttach(p, 2), 1u);
  EXPECT_EQ(p.RootedDepth(4), 3u);
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, ReattachWithBusyRootWaitsInsteadOfPullingFromBelow) {
  BroadcastPlanner p(1);
  p.AddComplete(1);
  MustAttach(p, 2);
  MustAttach(p, 3);
  MustAttach(p, 4);
  p.Detach(2, true);
  MustAttach(p, 5);   // takes a's free slot first
  absl::StatusOr<NodeId> r = p.Attach(2);
  // Free copies: 4 (below 2) and 5 (a partial copy on a's slot, not below 2).
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 5u);
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, DetachWithoutKeepDropsTheCopyAndOrphansItsReceivers) {
  BroadcastPlanner p(2);
  p.AddComplete(1);
  MustAttach(p, 2);
  MustAttach(p, 3);
  MustAttach(p, 4);   // below 2 or 3
  MustAttach(p, 5);
  NodeId parent4 = p.copies().at(4).upstream;
  std::vector<NodeId> orphans = p.Detach(parent4, /*keep_partial=*/false);
  EXPECT_FALSE(p.HasCopy(parent4));
  EXPECT_THAT(orphans, ::testing::Contains(4u));
  for (NodeId o : orphans) {
    EXPECT_EQ(p.copies().at(o).upstream, 0u);
    EXPECT_EQ(p.RootedDepth(o), BroadcastPlanner::kUnrooted);
  }
  EXPECT_EQ(p.copies().at(1).serving, 1u);
  EXPECT_EQ(CheckInvariants(p), "");
  // Detach of an unknown node is a no-op.
  EXPECT_THAT(p.Detach(99, false), IsEmpty());
  // Detach of a complete copy keeps it.
  EXPECT_THAT(p.Detach(1, false), IsEmpty());
  EXPECT_TRUE(p.IsComplete(1));
}

TEST(BroadcastPlannerTest, RemoveNodeReturnsOrphans) {
  BroadcastPlanner p(3);
  p.AddComplete(1);
  MustAttach(p, 2);
  MustAttach(p, 3);
  MustAttach(p, 4);
  EXPECT_THAT(p.RemoveNode(1), UnorderedElementsAre(2u, 3u, 4u));
  EXPECT_FALSE(p.HasCopy(1));
  EXPECT_EQ(p.complete_copies(), 0u);
  EXPECT_EQ(p.partial_copies(), 3u);
  EXPECT_EQ(CheckInvariants(p), "");
  // No complete copy and every partial one unrooted: nobody can serve.
  EXPECT_EQ(p.Attach(5).status().code(), absl::StatusCode::kUnavailable);
  // A receiver removed mid-pull frees its sender's slot.
  p.AddComplete(9);
  MustAttach(p, 2);
  EXPECT_EQ(p.copies().at(9).serving, 1u);
  EXPECT_THAT(p.RemoveNode(2), IsEmpty());
  EXPECT_EQ(p.copies().at(9).serving, 0u);
  EXPECT_THAT(p.RemoveNode(12345), IsEmpty());
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerTest, AddCompleteIsIdempotentAndFreesUpstream) {
  BroadcastPlanner p(1);
  p.AddComplete(1);
  p.AddComplete(1);
  EXPECT_EQ(p.complete_copies(), 1u);
  MustAttach(p, 2);
  p.AddComplete(2);   // re-report of a finished copy
  p.AddComplete(2);
  EXPECT_EQ(p.copies().at(1).serving, 0u);
  EXPECT_EQ(p.complete_copies(), 2u);
  EXPECT_EQ(CheckInvariants(p), "");
}

// With a distance, a receiver pulls from the nearest copy that can serve, even over a longer
// chain (rack A: nodes 1-4, rack B: 5-8).
TEST(BroadcastPlannerTest, ANearCopyWinsOverAShorterChain) {
  BroadcastPlanner p(2);
  p.AddComplete(1);                                  // rack A
  ASSERT_EQ(MustAttach(p, 5), 1u);                   // rack B: from the source, depth 1
  // Node 6 (rack B): the source (depth 0, rack A) has a free slot, but 5 is in its rack.
  auto in_b = [](NodeId sender) { return sender >= 5 ? 1u : 2u; };
  absl::StatusOr<NodeId> s = p.Attach(6, {}, in_b);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, 5u);
  // Without a distance the shorter chain wins.
  ASSERT_EQ(MustAttach(p, 7), 1u);
  // The same host beats the same rack.
  auto by_host = [](NodeId sender) { return sender == 7 ? 0u : sender >= 5 ? 1u : 2u; };
  s = p.Attach(8, {}, by_host);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, 7u);
  EXPECT_EQ(CheckInvariants(p), "");
}

TEST(BroadcastPlannerRandomizedTest, InvariantsHoldUnderRandomEvents) {
  for (uint64_t seed : {1u, 2u, 3u, 17u, 99u, 2024u}) {
    std::mt19937_64 rng(seed);
    const uint32_t fanout = 1 + rng() % 4;
    BroadcastPlanner p(fanout);
    p.AddComplete(1);
    int ok_attaches = 0;
    for (int step = 0; step < 3000; ++step) {
      const NodeId node = 1 + rng() % 64;
      const int op = static_cast<int>(rng() % 100);
      std::string what;
      if (op < 45) {
        absl::flat_hash_set<NodeId> exclude;
        if (rng() % 4 == 0) exclude.insert(1 + rng() % 64);
        absl::StatusOr<NodeId> s = p.Attach(node, exclude);
        what = "attach " + std::to_string(node);
        if (s.ok()) {
          ++ok_attaches;
          ASSERT_NE(*s, node) << "seed " << seed << " step " << step;
          ASSERT_FALSE(exclude.contains(*s)) << "seed " << seed << " step " << step;
          ASSERT_EQ(p.copies().at(node).upstream, *s);
          ASSERT_FALSE(p.IsComplete(node));
        } else {
          ASSERT_TRUE(s.status().code() == absl::StatusCode::kNotFound ||
                      s.status().code() == absl::StatusCode::kUnavailable ||
                      s.status().code() == absl::StatusCode::kFailedPrecondition)
              << s.status();
        }
      } else if (op < 65) {
        // Only a copy that is attached can complete.
        if (p.HasCopy(node) && p.copies().at(node).upstream != 0) {
          p.Completed(node);
          what = "complete " + std::to_string(node);
        }
      } else if (op < 80) {
        p.Detach(node, /*keep_partial=*/true);
        what = "sender of " + std::to_string(node) + " failed";
      } else if (op < 90) {
        p.Detach(node, /*keep_partial=*/false);
        what = "abort " + std::to_string(node);
      } else if (op < 97) {
        p.RemoveNode(node);
        what = "remove " + std::to_string(node);
      } else {
        p.AddComplete(node);
        what = "publish " + std::to_string(node);
      }
      if (p.complete_copies() == 0 && rng() % 8 == 0) p.AddComplete(1 + rng() % 64);
      std::string bad = CheckInvariants(p);
      ASSERT_EQ(bad, "") << "seed " << seed << " step " << step << " after " << what;
    }
    EXPECT_GT(ok_attaches, 100) << "seed " << seed;
  }
}

}  // namespace
}  // namespace ferry::control
