// GroupTable (control/groups/group_table.h): creation checks, rank order by host, revocation.
#include "control/groups/group_table.h"

#include <gtest/gtest.h>

#include "tests/unit/control/fake_cluster_view.h"

namespace ferry::control {
namespace {

proto::CreateGroupRequest ById(const std::string& name, std::vector<uint64_t> ids) {
  proto::CreateGroupRequest r;
  r.set_name(name);
  for (uint64_t id : ids) r.add_node_ids(id);
  return r;
}

class GroupTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (NodeId id = 1; id <= 6; ++id) cluster_.Add(id);
  }
  FakeClusterView cluster_;
  GroupTable table_;
};

TEST_F(GroupTableTest, CreatesInTheOrderGivenByIdOrName) {
  absl::StatusOr<proto::GroupInfo> g = table_.Create(ById("g", {3, 1, 2}), cluster_);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->members_size(), 3);
  EXPECT_EQ(g->members(0).node_id(), 3u);
  EXPECT_EQ(g->members(1).node_id(), 1u);
  EXPECT_EQ(g->members(2).node_id(), 2u);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(g->members(r).rank(), static_cast<uint32_t>(r));
  EXPECT_FALSE(g->revoked());

  proto::CreateGroupRequest by_name;
  by_name.set_name("h");
  by_name.add_node_names("n5");
  by_name.add_node_names("n4");
  g = table_.Create(by_name, cluster_);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->members(0).node_id(), 5u);
  EXPECT_EQ(g->members(1).node_id(), 4u);
  EXPECT_EQ(table_.List().groups_size(), 2);
}

TEST_F(GroupTableTest, MembersOfOneHostAreAdjacent) {
  // Hosts: 1, 3, 5 on "a"; 2, 4 on "b"; 6 on its own (no label: its name).
  for (NodeId id : {1, 3, 5}) (*const_cast<proto::NodeInfo*>(cluster_.Info(id))->mutable_labels())["host"] = "a";
  for (NodeId id : {2, 4}) (*const_cast<proto::NodeInfo*>(cluster_.Info(id))->mutable_labels())["host"] = "b";
  absl::StatusOr<proto::GroupInfo> g = table_.Create(ById("g", {1, 2, 3, 4, 5, 6}), cluster_);
  ASSERT_TRUE(g.ok()) << g.status();
  std::vector<uint64_t> order;
  for (const proto::GroupMember& m : g->members()) order.push_back(m.node_id());
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 3, 5, 2, 4, 6}));
  EXPECT_EQ(g->members(0).host(), "a");
  EXPECT_EQ(g->members(3).host(), "b");
  EXPECT_EQ(g->members(5).host(), "n6");
}

TEST_F(GroupTableTest, HostsOfOneRackAreAdjacent) {
  // Racks: 1, 3, 5 in "A"; 2, 4 in "B"; 6 in none. Node 5 shares node 1's host.
  auto label = [this](NodeId id, const char* k, const char* v) {
    (*const_cast<proto::NodeInfo*>(cluster_.Info(id))->mutable_labels())[k] = v;
  };
  for (NodeId id : {1, 3, 5}) label(id, "rack", "A");
  for (NodeId id : {2, 4}) label(id, "rack", "B");
  label(1, "host", "h1");
  label(5, "host", "h1");
  absl::StatusOr<proto::GroupInfo> g = table_.Create(ById("racked", {2, 1, 6, 4, 3, 5}), cluster_);
  ASSERT_TRUE(g.ok()) << g.status();
  std::vector<uint64_t> order;
  for (const proto::GroupMember& m : g->members()) order.push_back(m.node_id());
  // The first member's rack (B) first, then rack A with h1's members adjacent, then no rack.
  EXPECT_EQ(order, (std::vector<uint64_t>{2, 4, 1, 5, 3, 6}));
}

TEST_F(GroupTableTest, RefusesBadRequests) {
  auto code = [&](const proto::CreateGroupRequest& r) { return table_.Create(r, cluster_).status().code(); };
  EXPECT_EQ(code(ById("g", {1, 2, 1})), absl::StatusCode::kInvalidArgument);   // duplicate
  absl::Status dup = table_.Create(ById("g", {1, 2, 1}), cluster_).status();
  EXPECT_NE(dup.message().find("twice"), std::string::npos) << dup;
  EXPECT_EQ(code(ById("g", {1})), absl::StatusCode::kInvalidArgument);        // one member
  EXPECT_EQ(code(ById("", {1, 2})), absl::StatusCode::kInvalidArgument);      // no name
  EXPECT_EQ(code(ById("bad name", {1, 2})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ById("g", {1, 99})), absl::StatusCode::kNotFound);           // unknown node
  cluster_.Kill(2);
  EXPECT_EQ(code(ById("g", {1, 2})), absl::StatusCode::kFailedPrecondition);  // dead member
  proto::CreateGroupRequest both = ById("g", {1, 3});
  both.add_node_names("n4");
  EXPECT_EQ(code(both), absl::StatusCode::kInvalidArgument);                  // two lists
  proto::CreateGroupRequest none;
  none.set_name("g");
  EXPECT_EQ(code(none), absl::StatusCode::kInvalidArgument);
  proto::CreateGroupRequest unknown_name;
  unknown_name.set_name("g");
  unknown_name.add_node_names("n1");
  unknown_name.add_node_names("nobody");
  EXPECT_EQ(code(unknown_name), absl::StatusCode::kNotFound);
  ASSERT_TRUE(table_.Create(ById("g", {1, 3}), cluster_).ok());
  EXPECT_EQ(code(ById("g", {4, 5})), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(table_.List().groups_size(), 1);   // nothing else was stored
}

TEST_F(GroupTableTest, DeathRevokesEveryGroupWithTheMember) {
  ASSERT_TRUE(table_.Create(ById("a", {1, 2, 3}), cluster_).ok());
  ASSERT_TRUE(table_.Create(ById("b", {3, 4}), cluster_).ok());
  ASSERT_TRUE(table_.Create(ById("c", {5, 6}), cluster_).ok());
  std::vector<std::string> revoked = table_.OnNodeDeath(3, "killed");
  EXPECT_EQ(revoked, (std::vector<std::string>{"a", "b"}));
  absl::StatusOr<const proto::GroupInfo*> a = table_.Usable("a");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(a.status().message().find("n3"), std::string::npos) << a.status();
  EXPECT_NE(a.status().message().find("killed"), std::string::npos) << a.status();
  EXPECT_TRUE(table_.Usable("c").ok());
  EXPECT_EQ(table_.Usable("zz").status().code(), absl::StatusCode::kNotFound);
  // A revoked group stays listed with why until deleted; then its name is free again.
  proto::ListGroupsReply list = table_.List();
  ASSERT_EQ(list.groups_size(), 3);
  EXPECT_TRUE(list.groups(0).revoked());
  EXPECT_FALSE(list.groups(2).revoked());
  EXPECT_EQ(table_.Create(ById("a", {1, 2}), cluster_).status().code(), absl::StatusCode::kAlreadyExists);
  absl::StatusOr<proto::GroupInfo> removed = table_.Remove("a");
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(removed->revoked());
  EXPECT_EQ(table_.Remove("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(table_.Create(ById("a", {1, 2}), cluster_).ok());
  table_.CountCollective("a");
  table_.CountCollective("a");
  EXPECT_EQ((*table_.Usable("a"))->collectives(), 2u);
}

TEST_F(GroupTableTest, TheEndOfItsLeaseRevokesOnlyTheGroupMadeFromIt) {
  proto::CreateGroupRequest from_lease = ById("leased", {1, 2});
  from_lease.set_lease_id(7);
  absl::StatusOr<proto::GroupInfo> g = table_.Create(from_lease, cluster_);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->lease_id(), 7u);
  ASSERT_TRUE(table_.Create(ById("plain", {1, 2}), cluster_).ok());
  EXPECT_TRUE(table_.OnLeaseEnded(8, "lease 8 was released").empty());
  EXPECT_TRUE(table_.OnLeaseEnded(0, "no lease").empty());   // groups from member lists have none
  EXPECT_EQ(table_.OnLeaseEnded(7, "lease 7 was released by its holder 'x'"), (std::vector<std::string>{"leased"}));
  absl::StatusOr<const proto::GroupInfo*> leased = table_.Usable("leased");
  ASSERT_FALSE(leased.ok());
  EXPECT_NE(leased.status().message().find("lease 7 was released"), std::string::npos) << leased.status();
  EXPECT_TRUE(table_.Usable("plain").ok());
  EXPECT_TRUE(table_.OnLeaseEnded(7, "again").empty());   // revoked once
}

}  // namespace
}  // namespace ferry::control
