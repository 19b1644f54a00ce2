// control/cluster/locality.h: distances from host and rack labels, the order in which an
// explicit broadcast attaches its targets, and the tree that order builds with the planner.
#include "control/cluster/locality.h"

#include <map>
#include <string>
#include <vector>

#include "control/planner/broadcast_planner.h"
#include "gtest/gtest.h"

namespace ferry::control {
namespace {

proto::NodeInfo Node(NodeId id, const std::string& host, const std::string& rack) {
  proto::NodeInfo n;
  n.set_node_id(id);
  n.set_name("n" + std::to_string(id));
  if (!host.empty()) (*n.mutable_labels())["host"] = host;
  if (!rack.empty()) (*n.mutable_labels())["rack"] = rack;
  return n;
}

TEST(LocalityTest, DistanceComesFromHostThenRackLabels) {
  const proto::NodeInfo a = Node(1, "h1", "r1"), b = Node(2, "h1", "r1"), c = Node(3, "h2", "r1"),
                        d = Node(4, "h3", "r2"), bare = Node(5, "", ""), bare2 = Node(6, "", "");
  EXPECT_EQ(LocalityDistance(&a, &b), kSameHost);
  EXPECT_EQ(LocalityDistance(&a, &c), kSameRack);
  EXPECT_EQ(LocalityDistance(&a, &d), kRemote);
  EXPECT_EQ(LocalityDistance(&bare, &bare), kSameHost);   // a node is its own host
  EXPECT_EQ(LocalityDistance(&bare, &bare2), kRemote);    // no rack label: shares a rack with no one
  EXPECT_EQ(LocalityDistance(&a, nullptr), kRemote);
  EXPECT_EQ(HostOf(bare), "n5");
  EXPECT_EQ(HostOf(a), "h1");
  EXPECT_TRUE(HasTopologyLabels(a));
  EXPECT_TRUE(HasTopologyLabels(Node(7, "", "r9")));
  EXPECT_FALSE(HasTopologyLabels(bare));
}

TEST(LocalityTest, TargetsAreOrderedSourceHostThenSourceRackThenRackByRack) {
  std::map<NodeId, proto::NodeInfo> nodes;
  auto add = [&](NodeId id, const std::string& host, const std::string& rack) { nodes[id] = Node(id, host, rack); };
  add(1, "h1", "A");   // the source
  add(2, "h9", "B");
  add(3, "h2", "A");
  add(4, "h8", "C");
  add(5, "h1", "A");   // on the source's host
  add(6, "h9", "B");
  add(7, "", "");      // no rack
  add(8, "h7", "B");
  add(9, "h2", "A");
  auto info = [&](NodeId n) -> const proto::NodeInfo* {
    auto it = nodes.find(n);
    return it == nodes.end() ? nullptr : &it->second;
  };
  const std::vector<NodeId> given = {2, 3, 4, 5, 6, 7, 8, 9, 42};
  // 5 (source host); 3, 9 (rack A, host h2); rack B (first seen) with h9's nodes adjacent, then
  // h7; rack C; no rack; unknown.
  EXPECT_EQ(OrderByLocality(given, 1, info), (std::vector<NodeId>{5, 3, 9, 2, 6, 8, 4, 7, 42}));
  // Without a source: racks in order of first appearance.
  EXPECT_EQ(OrderByLocality({2, 3, 6, 9}, 0, info), (std::vector<NodeId>{2, 6, 3, 9}));
}

// Receivers that arrive alternating between two racks make a fanout-1 chain cross racks at
// every hop; attached in OrderByLocality's order, with the planner's distance, it crosses once.
TEST(LocalityTest, AChainBuiltInLocalityOrderEntersEachRackOnce) {
  std::map<NodeId, proto::NodeInfo> nodes;
  for (NodeId id = 1; id <= 8; ++id) nodes[id] = Node(id, "h" + std::to_string(id), id <= 4 ? "A" : "B");
  auto info = [&](NodeId n) -> const proto::NodeInfo* { return &nodes.at(n); };
  const std::vector<NodeId> arrivals = {5, 2, 6, 3, 7, 4, 8};
  auto crossings = [&](const std::vector<NodeId>& order) {
    BroadcastPlanner p(1);
    p.AddComplete(1);
    int crossed = 0;
    for (NodeId r : order) {
      absl::StatusOr<NodeId> s =
          p.Attach(r, {}, [&, r](NodeId sender) { return LocalityDistance(info(r), info(sender)); });
      EXPECT_TRUE(s.ok()) << s.status();
      if (s.ok() && LocalityDistance(info(r), info(*s)) == kRemote) ++crossed;
    }
    return crossed;
  };
  EXPECT_EQ(crossings(arrivals), 7);
  EXPECT_EQ(crossings(OrderByLocality(arrivals, 1, info)), 1);
}

}  // namespace
}  // namespace ferry::control
