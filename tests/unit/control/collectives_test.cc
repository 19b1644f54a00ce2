// Tests of control/collectives/: the broadcast and delete collectives and the operation table,
// driven with fake reports and node deaths over a real Directory and a fake cluster view.
#include <string>
#include <vector>

#include "control/collectives/broadcast.h"
#include "control/collectives/delete.h"
#include "control/collectives/operations.h"
#include "gmock/gmock.h"
#include "tests/unit/control/proto_builders.h"
#include "gtest/gtest.h"
#include "tests/unit/control/fake_cluster_view.h"

namespace ferry::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kBig = 1 << 20;   // above the inline limit
const absl::Time kT0 = absl::FromUnixSeconds(1000);

proto::ObjectRef Ref(const std::string& key) { return testing::TestRef(key); }

proto::ObjectMeta Meta(uint64_t size) { return testing::TestMeta(size, /*incarnation=*/77); }

proto::ReportTransferRequest Report(NodeId node, const std::string& key, proto::ReportTransferRequest::Outcome outcome,
                                    OpId op = 0, std::string detail = "") {
  proto::ReportTransferRequest r;
  r.set_node_id(node);
  *r.mutable_ref() = Ref(key);
  r.set_outcome(outcome);
  r.set_op_id(op);
  r.set_detail(std::move(detail));
  r.set_incarnation(77);
  return r;
}

std::vector<NodeId> NodesOf(const Instructions& ins) {
  std::vector<NodeId> out;
  for (const Instruction& i : ins) out.push_back(i.node);
  return out;
}

class CollectivesTest : public ::testing::Test {
 protected:
  CollectivesTest() {
    for (NodeId id = 1; id <= 4; ++id) cluster_.Add(id);
  }
  CollectiveContext Ctx() { return CollectiveContext{cluster_, dir_, now_, &attached_}; }
  // `rereport`: a further complete copy (keys are unique cluster-wide, so only a node
  // re-registering what it held publishes a key that exists).
  void PublishBig(NodeId node, const std::string& key, bool rereport = false) {
    ASSERT_TRUE(dir_.Publish(node, Ref(key), Meta(kBig), "", LinkModel{}, /*receivers=*/4, rereport).ok());
  }
  proto::BroadcastRequest Request(const std::string& key, std::vector<NodeId> targets, bool wait = true) {
    proto::BroadcastRequest req;
    *req.mutable_ref() = Ref(key);
    for (NodeId t : targets) req.add_node_ids(t);
    req.set_wait(wait);
    req.set_timeout_ms(10000);
    return req;
  }

  FakeClusterView cluster_;
  Directory dir_{DirectoryOptions{}};
  absl::Time now_ = kT0;
  std::atomic<uint64_t> attached_{0};
};

TEST_F(CollectivesTest, BroadcastInstructsTargetsWithoutACopyWithTheirOwnSender) {
  PublishBig(1, "k");
  BroadcastCollective op(7, Request("k", {1, 2, 3}), kT0, kT0 + absl::Seconds(10));
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op.Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  EXPECT_THAT(NodesOf(*ins), ElementsAre(2, 3));   // 1 holds it already
  for (const Instruction& i : *ins) {
    ASSERT_TRUE(i.msg->has_pull());
    EXPECT_EQ(i.msg->pull().broadcast_id(), 7u);   // the operation id travels with it
    EXPECT_EQ(i.bytes, i.msg->ByteSizeLong());
    EXPECT_NE(i.msg->pull().source().sender(), 0u);   // pre-attached
    EXPECT_EQ(i.msg->pull().source().sender_address(),
              "addr-" + std::to_string(i.msg->pull().source().sender()));
  }
  EXPECT_EQ(attached_.load(), 2u);
  EXPECT_FALSE(op.Done(ctx));
  // Completions are read from the directory.
  ASSERT_TRUE(dir_.Completed(2, Ref("k"), 77));
  EXPECT_FALSE(op.Done(ctx));
  ASSERT_TRUE(dir_.Completed(3, Ref("k"), 77));
  EXPECT_TRUE(op.Done(ctx));
  op.Conclude(ctx, Conclusion::kDone);
  ASSERT_EQ(op.reply().results_size(), 3);
  for (const proto::BroadcastResult& r : op.reply().results()) EXPECT_TRUE(r.ok()) << r.node_id();
  EXPECT_EQ(op.reply().broadcast_id(), 7u);
}

TEST_F(CollectivesTest, BroadcastToEveryLiveNodeWhenNoTargetsAreNamed) {
  PublishBig(1, "k");
  cluster_.Kill(4);
  BroadcastCollective op(1, Request("k", {}), kT0, kT0 + absl::Seconds(10));
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op.Start(ctx).ok());
  EXPECT_THAT(op.targets(), UnorderedElementsAre(1, 2, 3));
}

TEST_F(CollectivesTest, BroadcastFailsAtStartForUnknownObjectsAndTargets) {
  CollectiveContext ctx = Ctx();
  BroadcastCollective missing(1, Request("nope", {2}), kT0, kT0 + absl::Seconds(1));
  EXPECT_EQ(missing.Start(ctx).status().code(), absl::StatusCode::kNotFound);
  PublishBig(1, "k");
  BroadcastCollective unknown_target(2, Request("k", {2, 99}), kT0, kT0 + absl::Seconds(1));
  absl::StatusOr<Instructions> s = unknown_target.Start(ctx);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("99"));
}

TEST_F(CollectivesTest, BroadcastEndsWhenTargetsDieOrAbort) {
  PublishBig(1, "k");
  cluster_.Kill(4);
  BroadcastCollective op(5, Request("k", {2, 3, 4}), kT0, kT0 + absl::Seconds(10));
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op.Start(ctx);
  ASSERT_TRUE(ins.ok());
  EXPECT_THAT(NodesOf(*ins), ElementsAre(2, 3));   // 4 is dead: not instructed
  EXPECT_THAT(op.OnNodeDeath(ctx, 2, "its session closed"), IsEmpty());
  EXPECT_FALSE(op.Done(ctx));
  EXPECT_THAT(op.OnReport(ctx, Report(3, "k", proto::ReportTransferRequest::ABORTED, 5, "disk on fire")), IsEmpty());
  EXPECT_TRUE(op.Done(ctx));
  op.Conclude(ctx, Conclusion::kDone);
  ASSERT_EQ(op.reply().results_size(), 3);
  EXPECT_EQ(op.reply().results(0).error(), "node died: its session closed");
  EXPECT_EQ(op.reply().results(1).error(), "disk on fire");
  EXPECT_EQ(op.reply().results(2).error(), "node is dead");
  for (const proto::BroadcastResult& r : op.reply().results()) EXPECT_FALSE(r.ok());
}

TEST_F(CollectivesTest, BroadcastAtItsDeadlineNamesTheTargetsThatTimedOut) {
  PublishBig(1, "k");
  BroadcastCollective op(5, Request("k", {2, 3}), kT0, kT0 + absl::Seconds(2));
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op.Start(ctx).ok());
  ASSERT_TRUE(dir_.Completed(2, Ref("k"), 77));
  now_ = kT0 + absl::Seconds(2);
  CollectiveContext later = Ctx();
  op.Conclude(later, Conclusion::kDeadline);
  EXPECT_DOUBLE_EQ(op.reply().seconds(), 2.0);
  ASSERT_EQ(op.reply().results_size(), 2);
  EXPECT_TRUE(op.reply().results(0).ok());
  EXPECT_FALSE(op.reply().results(1).ok());
  EXPECT_EQ(op.reply().results(1).error(), "timed out before the copy completed");
  EXPECT_EQ(op.reply().results(1).node_name(), "n3");
}

TEST_F(CollectivesTest, InlineBroadcastSharesOneMessageAndRecordsReceiversForDelete) {
  ASSERT_TRUE(dir_.Publish(1, Ref("small"), Meta(5), "hello", LinkModel{}, 4).ok());
  BroadcastCollective op(3, Request("small", {2, 3}, /*wait=*/false), kT0, kT0 + absl::Seconds(1));
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op.Start(ctx);
  ASSERT_TRUE(ins.ok());
  ASSERT_EQ(ins->size(), 2u);
  EXPECT_EQ((*ins)[0].msg, (*ins)[1].msg);   // the same bytes, one message
  EXPECT_TRUE((*ins)[0].msg->pull().is_inline());
  EXPECT_EQ((*ins)[0].msg->pull().inline_data(), "hello");
  // Without wait every target counts as instructed.
  op.Conclude(ctx, Conclusion::kDone);
  for (const proto::BroadcastResult& r : op.reply().results()) EXPECT_TRUE(r.ok());
  // The receivers of the inline bytes are holders a Delete must reach.
  DeleteCollective del(4, Ref("small"));
  absl::StatusOr<Instructions> drops = del.Start(ctx);
  ASSERT_TRUE(drops.ok());
  EXPECT_THAT(NodesOf(*drops), UnorderedElementsAre(1, 2, 3));
}

TEST_F(CollectivesTest, ImplicitBroadcastAttachesAndAppliesReports) {
  PublishBig(1, "k");
  CollectiveContext ctx = Ctx();
  proto::AcquireSourceReply reply;
  ASSERT_TRUE(AttachReceiver(ctx, 2, Ref("k"), {}, &reply).ok());
  EXPECT_EQ(reply.sender(), 1u);
  EXPECT_EQ(reply.sender_address(), "addr-1");
  EXPECT_TRUE(reply.sender_complete());
  proto::AcquireSourceReply none;
  EXPECT_EQ(AttachReceiver(ctx, 3, Ref("other"), {}, &none).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(AttachReceiver(ctx, 9, Ref("k"), {}, &none).code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<bool> live = ApplyReport(dir_, Report(2, "k", proto::ReportTransferRequest::COMPLETED));
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(*live);
  EXPECT_TRUE(dir_.IsComplete(2, Ref("k")));
  proto::ReportTransferRequest bad = Report(2, "k", proto::ReportTransferRequest::COMPLETED);
  bad.set_outcome(static_cast<proto::ReportTransferRequest::Outcome>(42));
  EXPECT_EQ(ApplyReport(dir_, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CollectivesTest, DeleteWaitsForEveryLiveHolderToAckOrDie) {
  PublishBig(1, "k");
  PublishBig(2, "k", /*rereport=*/true);
  PublishBig(3, "k", /*rereport=*/true);
  cluster_.Kill(3);
  DeleteCollective op(9, Ref("k"));
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op.Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  EXPECT_THAT(NodesOf(*ins), UnorderedElementsAre(1, 2));   // the dead holder is not waited for
  for (const Instruction& i : *ins) {
    ASSERT_TRUE(i.msg->has_drop());
    EXPECT_EQ(i.msg->drop().op_id(), 9u);
    EXPECT_EQ(i.msg->drop().incarnation(), 77u);
  }
  EXPECT_EQ(op.reply().copies_dropped(), 3u);
  EXPECT_EQ(dir_.size(), 0u);
  EXPECT_FALSE(op.Done(ctx));
  (void)op.OnNodeAck(ctx, 1);
  EXPECT_FALSE(op.Done(ctx));
  (void)op.OnNodeDeath(ctx, 2, "gone");
  EXPECT_TRUE(op.Done(ctx));
  DeleteCollective again(10, Ref("k"));
  EXPECT_EQ(again.Start(ctx).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CollectivesTest, DeleteBatchSendsEachHolderItsDropsPackedWithOneConfirmation) {
  PublishBig(1, "a");
  PublishBig(2, "a", /*rereport=*/true);
  PublishBig(1, "b");
  DeleteBatchCollective op(11, {Ref("a"), Ref("missing"), Ref("b")});
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op.Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  // Node 1 holds a and b: one message with both drops in order, asking for a DropDone; node 2
  // one with a.
  std::vector<std::string> to1, to2;
  for (const Instruction& i : *ins) {
    ASSERT_TRUE(i.msg->has_batch_drop());
    EXPECT_EQ(i.msg->batch_drop().op_id(), 11u);
    for (const proto::DropEntry& e : i.msg->batch_drop().entries()) {
      (i.node == 1 ? to1 : to2).push_back(e.ref().key());
      EXPECT_EQ(e.incarnation(), 77u);
    }
  }
  EXPECT_EQ(NodesOf(*ins).size(), 2u);
  EXPECT_THAT(to1, ::testing::ElementsAre("a", "b"));
  EXPECT_THAT(to2, ::testing::ElementsAre("a"));
  ASSERT_EQ(op.reply().errors_size(), 1);
  EXPECT_EQ(op.reply().errors(0).index(), 1u);
  EXPECT_EQ(op.reply().errors(0).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(op.reply().copies_dropped(), 3u);
  EXPECT_EQ(dir_.size(), 0u);
  EXPECT_FALSE(op.Done(ctx));
  (void)op.OnNodeAck(ctx, 1);
  EXPECT_FALSE(op.Done(ctx));
  (void)op.OnNodeAck(ctx, 2);
  EXPECT_TRUE(op.Done(ctx));
}

TEST_F(CollectivesTest, DeleteBatchSplitsLongDropListsAndOnlyTheLastMessageAsksForADropDone) {
  const size_t n = kMaxDropsPerMessage + 10;
  std::vector<proto::ObjectRef> refs;
  for (size_t i = 0; i < n; ++i) {
    const std::string key = "k" + std::to_string(i);
    PublishBig(1, key);
    refs.push_back(Ref(key));
  }
  DeleteBatchCollective op(12, refs);
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op.Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  ASSERT_EQ(ins->size(), 2u);
  EXPECT_EQ((*ins)[0].msg->batch_drop().entries_size(), static_cast<int>(kMaxDropsPerMessage));
  EXPECT_EQ((*ins)[0].msg->batch_drop().op_id(), 0u);
  EXPECT_EQ((*ins)[1].msg->batch_drop().entries_size(), 10);
  EXPECT_EQ((*ins)[1].msg->batch_drop().op_id(), 12u);
  EXPECT_EQ((*ins)[1].msg->batch_drop().entries(9).ref().key(), "k" + std::to_string(n - 1));
  EXPECT_EQ(op.reply().copies_dropped(), n);
}

TEST_F(CollectivesTest, OperationsRouteReportsByOpIdAndFallBackToTheObject) {
  PublishBig(1, "k");
  Operations ops;
  const OpId a = ops.NextId(), b = ops.NextId(), c = ops.NextId();
  EXPECT_NE(a, 0u);
  Collective* op_a = ops.Add(std::make_unique<BroadcastCollective>(a, Request("k", {2}), kT0, kT0), nullptr);
  Collective* op_b = ops.Add(std::make_unique<BroadcastCollective>(b, Request("k", {3}), kT0, kT0), nullptr);
  Collective* op_c = ops.Add(std::make_unique<DeleteCollective>(c, Ref("other")), nullptr);
  EXPECT_THAT(ops.ForReport(Report(2, "k", proto::ReportTransferRequest::ABORTED, a)), ElementsAre(op_a));
  EXPECT_THAT(ops.ForReport(Report(2, "k", proto::ReportTransferRequest::ABORTED, 12345)), IsEmpty());
  // A ferryd that does not send op ids: every operation on the object.
  EXPECT_THAT(ops.ForReport(Report(2, "k", proto::ReportTransferRequest::ABORTED, 0)),
              UnorderedElementsAre(op_a, op_b));
  EXPECT_THAT(ops.ForKey({"ns", "other"}), ElementsAre(op_c));
  EXPECT_EQ(ops.All().size(), 3u);
  EXPECT_NE(ops.Remove(a), nullptr);
  EXPECT_EQ(ops.Find(a), nullptr);
  EXPECT_THAT(ops.ForReport(Report(2, "k", proto::ReportTransferRequest::ABORTED, 0)), ElementsAre(op_b));
  EXPECT_EQ(ops.Remove(a), nullptr);
}

}  // namespace
}  // namespace ferry::control
