#include "proto/membership_delta.h"

#include <gtest/gtest.h>

namespace ferry::control {
namespace {

proto::NodeInfo Info(uint64_t id) {
  proto::NodeInfo n;
  n.set_node_id(id);
  n.set_name("n" + std::to_string(id));
  n.set_dp_address("addr" + std::to_string(id));
  n.set_alive(true);
  return n;
}

proto::Membership Snapshot(uint64_t epoch, std::vector<uint64_t> ids) {
  std::vector<proto::NodeInfo> infos;
  for (uint64_t id : ids) infos.push_back(Info(id));
  std::vector<const proto::NodeInfo*> live;
  for (const proto::NodeInfo& n : infos) live.push_back(&n);
  return proto::MembershipSnapshot(epoch, live).membership();
}

proto::Membership Delta(uint64_t epoch, std::vector<uint64_t> added, std::vector<uint64_t> removed) {
  std::vector<proto::NodeInfo> infos;
  for (uint64_t id : added) infos.push_back(Info(id));
  return proto::MembershipDelta(epoch, infos, removed).membership();
}

std::vector<uint64_t> Ids(const std::map<uint64_t, std::string>& peers) {
  std::vector<uint64_t> ids;
  for (const auto& [id, addr] : peers) ids.push_back(id);
  return ids;
}

TEST(MembershipDeltaTest, SnapshotThenDeltasTrackTheLiveSetWithoutSelf) {
  uint64_t epoch = 0;
  std::map<uint64_t, std::string> peers;
  proto::Membership snap = Snapshot(5, {1, 2, 3});
  EXPECT_TRUE(snap.full());
  ASSERT_TRUE(proto::ApplyMembership(snap, /*self=*/2, &epoch, &peers).ok());
  EXPECT_EQ(epoch, 5u);
  EXPECT_EQ(Ids(peers), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(peers[3], "addr3");
  ASSERT_TRUE(proto::ApplyMembership(Delta(6, {4}, {}), 2, &epoch, &peers).ok());
  ASSERT_TRUE(proto::ApplyMembership(Delta(7, {}, {1}), 2, &epoch, &peers).ok());
  ASSERT_TRUE(proto::ApplyMembership(Delta(8, {5}, {3}), 2, &epoch, &peers).ok());
  EXPECT_EQ(epoch, 8u);
  EXPECT_EQ(Ids(peers), (std::vector<uint64_t>{4, 5}));
}

TEST(MembershipDeltaTest, AGapIsRefusedAndChangesNothing) {
  uint64_t epoch = 0;
  std::map<uint64_t, std::string> peers;
  ASSERT_TRUE(proto::ApplyMembership(Snapshot(3, {1, 2}), 1, &epoch, &peers).ok());
  absl::Status s = proto::ApplyMembership(Delta(5, {9}, {2}), 1, &epoch, &peers);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("epoch 5 after epoch 3"), std::string::npos) << s;
  EXPECT_EQ(epoch, 3u);
  EXPECT_EQ(Ids(peers), (std::vector<uint64_t>{2}));
  // A repeated (old) delta is a gap too.
  EXPECT_FALSE(proto::ApplyMembership(Delta(3, {9}, {}), 1, &epoch, &peers).ok());
}

TEST(MembershipDeltaTest, ADeltaBeforeAnySnapshotIsRefused) {
  uint64_t epoch = 0;
  std::map<uint64_t, std::string> peers;
  absl::Status s = proto::ApplyMembership(Delta(1, {2}, {}), 1, &epoch, &peers);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("before any snapshot"), std::string::npos) << s;
  EXPECT_TRUE(peers.empty());
}

TEST(MembershipDeltaTest, ANewerSnapshotReplacesTheViewAndAnOlderOneIsIgnored) {
  uint64_t epoch = 0;
  std::map<uint64_t, std::string> peers;
  ASSERT_TRUE(proto::ApplyMembership(Snapshot(4, {1, 2, 3}), 1, &epoch, &peers).ok());
  ASSERT_TRUE(proto::ApplyMembership(Snapshot(2, {1}), 1, &epoch, &peers).ok());
  EXPECT_EQ(Ids(peers), (std::vector<uint64_t>{2, 3}));
  ASSERT_TRUE(proto::ApplyMembership(Snapshot(9, {1, 7}), 1, &epoch, &peers).ok());
  EXPECT_EQ(epoch, 9u);
  EXPECT_EQ(Ids(peers), (std::vector<uint64_t>{7}));
}

TEST(MembershipDeltaTest, AFullListWithoutTheFlagIsASnapshot) {
  // A coordinator from before deltas sends `nodes` only.
  proto::Membership old;
  old.set_epoch(2);
  *old.add_nodes() = Info(1);
  *old.add_nodes() = Info(3);
  EXPECT_TRUE(proto::IsSnapshot(old));
  EXPECT_FALSE(proto::IsSnapshot(Delta(3, {4}, {})));
  uint64_t epoch = 0;
  std::map<uint64_t, std::string> peers;
  ASSERT_TRUE(proto::ApplyMembership(old, 1, &epoch, &peers).ok());
  EXPECT_EQ(Ids(peers), (std::vector<uint64_t>{3}));
}

TEST(MembershipDeltaTest, ADeltaIsSmallWhateverTheClusterSize) {
  std::vector<uint64_t> ids;
  for (uint64_t i = 1; i <= 4096; ++i) ids.push_back(i);
  const size_t snapshot = Snapshot(1, ids).ByteSizeLong();
  const size_t delta = Delta(2, {5000}, {}).ByteSizeLong();
  EXPECT_GT(snapshot, 4096u * 10);
  EXPECT_LT(delta, 64u);
}

TEST(MembershipDeltaTest, MergedDeltasApplyAsTheirSequence) {
  proto::Membership d1 = Delta(4, {10}, {});
  proto::Membership d2 = Delta(5, {}, {1});
  proto::Membership d3 = Delta(6, {11}, {10});   // 10 joined and left within the run
  proto::Membership d4 = Delta(7, {}, {2});
  proto::Membership d5 = Delta(8, {2}, {});       // 2 came back (a re-registration)
  proto::Membership merged = proto::MergeDeltas({&d1, &d2, &d3, &d4, &d5});
  EXPECT_EQ(merged.first_epoch(), 4u);
  EXPECT_EQ(merged.epoch(), 8u);
  EXPECT_FALSE(proto::IsSnapshot(merged));
  uint64_t epoch = 0;
  std::map<uint64_t, std::string> one, seq;
  ASSERT_TRUE(proto::ApplyMembership(Snapshot(3, {1, 2, 3}), 3, &epoch, &one).ok());
  uint64_t epoch2 = epoch;
  seq = one;
  ASSERT_TRUE(proto::ApplyMembership(merged, 3, &epoch, &one).ok()) << merged.DebugString();
  for (const proto::Membership* d : {&d1, &d2, &d3, &d4, &d5}) ASSERT_TRUE(proto::ApplyMembership(*d, 3, &epoch2, &seq).ok());
  EXPECT_EQ(epoch, 8u);
  EXPECT_EQ(one, seq);
  EXPECT_EQ(Ids(one), (std::vector<uint64_t>{2, 11}));
  // A merged delta must start right after the view's epoch.
  uint64_t e = 2;
  std::map<uint64_t, std::string> p;
  EXPECT_FALSE(proto::ApplyMembership(merged, 3, &e, &p).ok());
}

}  // namespace
}  // namespace ferry::control
