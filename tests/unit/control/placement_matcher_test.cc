#include "control/placement/matcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry::control::placement {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class MatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // rack a: nodes 1 (gpu 8), 2 (gpu 4); rack b: nodes 3 (gpu 2, mem 50), 4 (gpu 6, mem 10).
    ASSERT_TRUE(t_.AddNode(1, {{"rack", "a"}}, {{"gpu", 8}}).ok());
    ASSERT_TRUE(t_.AddNode(2, {{"rack", "a"}}, {{"gpu", 4}}).ok());
    ASSERT_TRUE(t_.AddNode(3, {{"rack", "b"}}, {{"gpu", 2}, {"mem", 50}}).ok());
    ASSERT_TRUE(t_.AddNode(4, {{"rack", "b"}}, {{"gpu", 6}, {"mem", 10}}).ok());
  }
  ResolvedBundle B(const ResourceMap& m) {
    ResolvedBundle b;
    for (const auto& [name, amount] : m) b.demands.push_back({t_.Intern(name), amount});
    return b;
  }
  ResolvedAlternative Alt(std::vector<ResourceMap> bundles, Constraint c = Constraint::kNone,
                          std::string label = "") {
    ResolvedAlternative alt;
    for (const auto& m : bundles) alt.bundles.push_back(B(m));
    alt.constraint = c;
    alt.label_key = std::move(label);
    return alt;
  }
  MatchResult Match(const ResolvedAlternative& alt, Scoring s = Scoring::kPack, Basis basis = Basis::kFree) {
    return Matcher(t_, s).Match(alt, basis);
  }
  ResourceTable t_;
};

TEST_F(MatcherTest, SingleBundlePackTakesTightestFitSpreadTakesMostFree) {
  MatchResult pack = Match(Alt({{{"gpu", 3}}}));
  ASSERT_TRUE(pack.found);
  EXPECT_THAT(pack.nodes, ElementsAre(2));  // 4 is the least gpu that covers 3
  MatchResult spread = Match(Alt({{{"gpu", 3}}}), Scoring::kSpread);
  ASSERT_TRUE(spread.found);
  EXPECT_THAT(spread.nodes, ElementsAre(1));
}

TEST_F(MatcherTest, SingleBundleFiltersOnEveryDemand) {
  MatchResult r = Match(Alt({{{"gpu", 3}, {"mem", 5}}}));
  ASSERT_TRUE(r.found);
  EXPECT_THAT(r.nodes, ElementsAre(4));
  MatchResult none = Match(Alt({{{"gpu", 3}, {"mem", 20}}}));
  EXPECT_FALSE(none.found);
  EXPECT_TRUE(none.exhaustive);
  EXPECT_THAT(none.why, HasSubstr("on one node"));
}

TEST_F(MatcherTest, TiesBreakByNodeId) {
  ResourceTable t;
  for (NodeId n : {7, 3, 5}) ASSERT_TRUE(t.AddNode(n, {}, {{"x", 2}}).ok());
  ResolvedAlternative alt;
  alt.bundles.push_back({{{t.Find("x").value(), 1}}});
  EXPECT_THAT(Matcher(t, Scoring::kPack).Match(alt, Basis::kFree).nodes, ElementsAre(3));
  EXPECT_THAT(Matcher(t, Scoring::kSpread).Match(alt, Basis::kFree).nodes, ElementsAre(7));
}

TEST_F(MatcherTest, FreeBasisSeesAllocationsCapacityBasisDoesNot) {
  ASSERT_TRUE(t_.Allocate(1, {{t_.Find("gpu").value(), 8}}).ok());
  EXPECT_FALSE(Match(Alt({{{"gpu", 7}}})).found);
  MatchResult cap = Match(Alt({{{"gpu", 7}}}), Scoring::kPack, Basis::kCapacity);
  ASSERT_TRUE(cap.found);
  EXPECT_THAT(cap.nodes, ElementsAre(1));
  EXPECT_THAT(Match(Alt({{{"gpu", 7}}})).why, HasSubstr("largest free of 'gpu' on any node is 6"));
}

TEST_F(MatcherTest, GangBundlesShareNodesWithoutOverAllocating) {
  MatchResult r = Match(Alt({{{"gpu", 5}}, {{"gpu", 5}}, {{"gpu", 3}}}));
  ASSERT_TRUE(r.found);
  ASSERT_EQ(r.nodes.size(), 3u);
  // 5 -> node 4 (6), 5 -> node 1 (8), 3 -> node 1 (3 left) or node 2: every node within capacity.
  std::map<NodeId, int64_t> used;
  const int64_t amounts[] = {5, 5, 3};
  for (size_t i = 0; i < 3; ++i) used[r.nodes[i]] += amounts[i];
  for (const auto& [node, amount] : used) EXPECT_LE(amount, t_.Capacity(node, t_.Find("gpu").value()));
  EXPECT_FALSE(Match(Alt({{{"gpu", 8}}, {{"gpu", 8}}})).found);
}

TEST_F(MatcherTest, SameNodeMatchesTheSum) {
  MatchResult r = Match(Alt({{{"gpu", 3}}, {{"gpu", 4}}}, Constraint::kSameNode));
  ASSERT_TRUE(r.found);
  EXPECT_THAT(r.nodes, ElementsAre(1, 1));
  MatchResult no = Match(Alt({{{"gpu", 5}}, {{"gpu", 4}}}, Constraint::kSameNode));
  EXPECT_FALSE(no.found);
  EXPECT_TRUE(Matcher(t_, Scoring::kPack).ProveNever(Alt({{{"gpu", 5}}, {{"gpu", 4}}}, Constraint::kSameNode)));
}

TEST_F(MatcherTest, DifferentNodesPutsEachBundleApart) {
  MatchResult r = Match(Alt({{{"gpu", 2}}, {{"gpu", 2}}, {{"gpu", 2}}, {{"gpu", 2}}}, Constraint::kDifferentNodes));
  ASSERT_TRUE(r.found);
  std::set<NodeId> distinct(r.nodes.begin(), r.nodes.end());
  EXPECT_EQ(distinct.size(), 4u);
  EXPECT_FALSE(Match(Alt({{{"gpu", 1}}, {{"gpu", 1}}, {{"gpu", 1}}, {{"gpu", 1}}, {{"gpu", 1}}},
                         Constraint::kDifferentNodes))
                   .found);
}

TEST_F(MatcherTest, DifferentNodesIsCompleteWhereGreedyFails) {
  // Pack gives bundle 0 (gpu 2) node 3 first (tightest), then bundle 1 needs mem 20: only
  // node 3 has it. The search must move bundle 0 elsewhere.
  MatchResult r = Match(Alt({{{"gpu", 2}}, {{"gpu", 1}, {"mem", 20}}}, Constraint::kDifferentNodes));
  ASSERT_TRUE(r.found) << r.why;
  EXPECT_NE(r.nodes[0], 3u);
  EXPECT_EQ(r.nodes[1], 3u);
}

TEST_F(MatcherTest, SameLabelValueKeepsBundlesInOneRack) {
  MatchResult r = Match(Alt({{{"gpu", 6}}, {{"gpu", 4}}}, Constraint::kSameLabelValue, "rack"));
  ASSERT_TRUE(r.found);
  EXPECT_EQ(*t_.Label(r.nodes[0], "rack"), *t_.Label(r.nodes[1], "rack"));
  // Needs 10 gpu plus mem in one rack: rack b has 8 gpu.
  MatchResult no = Match(Alt({{{"gpu", 6}, {"mem", 1}}, {{"gpu", 4}}}, Constraint::kSameLabelValue, "rack"));
  EXPECT_FALSE(no.found);
  EXPECT_TRUE(Matcher(t_, Scoring::kPack).ProveNever(Alt({{{"gpu", 6}, {"mem", 1}}, {{"gpu", 4}}},
                                                          Constraint::kSameLabelValue, "rack")));
  MatchResult nolabel = Match(Alt({{{"gpu", 1}}}, Constraint::kSameLabelValue, "zone"));
  EXPECT_FALSE(nolabel.found);
  EXPECT_THAT(nolabel.why, HasSubstr("no node has label 'zone'"));
}

TEST_F(MatcherTest, SpreadPrefersDistinctNodesForGangs) {
  MatchResult r = Match(Alt({{{"gpu", 1}}, {{"gpu", 1}}, {{"gpu", 1}}}), Scoring::kSpread);
  ASSERT_TRUE(r.found);
  EXPECT_EQ(std::set<NodeId>(r.nodes.begin(), r.nodes.end()).size(), 3u);
  MatchResult pack = Match(Alt({{{"gpu", 1}}, {{"gpu", 1}}}), Scoring::kPack);
  ASSERT_TRUE(pack.found);
  EXPECT_THAT(pack.nodes, ElementsAre(3, 3));  // the tightest node takes both
}

TEST_F(MatcherTest, ProveNeverNamesTheUnsatisfiableDemand) {
  Matcher m(t_, Scoring::kPack);
  std::optional<std::string> big = m.ProveNever(Alt({{{"gpu", 9}}}));
  ASSERT_TRUE(big);
  EXPECT_THAT(*big, HasSubstr("gpu=9"));
  EXPECT_THAT(*big, HasSubstr("largest capacity of 'gpu' on any node is 8"));
  std::optional<std::string> total = m.ProveNever(Alt({{{"gpu", 8}}, {{"gpu", 8}}, {{"gpu", 8}}}));
  ASSERT_TRUE(total);
  EXPECT_THAT(*total, HasSubstr("in total"));
  std::optional<std::string> missing = m.ProveNever(Alt({{{"tpu", 1}}}));
  ASSERT_TRUE(missing);
  EXPECT_THAT(*missing, HasSubstr("no node has 'tpu'"));
  std::optional<std::string> apart =
      m.ProveNever(Alt({{{"mem", 1}}, {{"mem", 1}}, {{"mem", 1}}}, Constraint::kDifferentNodes));
  ASSERT_TRUE(apart);
  EXPECT_THAT(*apart, HasSubstr("different nodes"));
  // Feasible once the cluster is free: not "never", even while allocated now.
  ASSERT_TRUE(t_.Allocate(1, {{t_.Find("gpu").value(), 8}}).ok());
  EXPECT_FALSE(m.ProveNever(Alt({{{"gpu", 8}}})));
}

TEST(MatcherBacktrackTest, FindsAPackingGreedyMisses) {
  // Node 1 has 6, node 2 has 4. Pack puts the first 3 on node 2 (tightest fit), the second on
  // node 1, and then 4 fits nowhere: only backtracking finds 3+3 on node 1 and 4 on node 2.
  ResourceTable t;
  ASSERT_TRUE(t.AddNode(1, {}, {{"x", 6}}).ok());
  ASSERT_TRUE(t.AddNode(2, {}, {{"x", 4}}).ok());
  const ResourceId x = t.Find("x").value();
  ResolvedAlternative alt;
  for (int64_t a : {3, 3, 4}) alt.bundles.push_back({{{x, a}}});
  MatchResult r = Matcher(t, Scoring::kPack).Match(alt, Basis::kFree);
  ASSERT_TRUE(r.found) << r.why;
  EXPECT_THAT(r.nodes, ElementsAre(1, 1, 2));
  alt.bundles.push_back({{{x, 1}}});  // 11 > 10: impossible, and the search says so exhaustively
  MatchResult no = Matcher(t, Scoring::kPack).Match(alt, Basis::kFree);
  EXPECT_FALSE(no.found);
  EXPECT_TRUE(Matcher(t, Scoring::kPack).ProveNever(alt));
}

}  // namespace
}  // namespace ferry::control::placement
