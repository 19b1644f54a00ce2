// Tests of control/collectives/reduce: request validation, and the operation driven with
// publications, position reports and node deaths over a real Directory and a fake cluster.
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/collectives/reduce.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/control/fake_cluster_view.h"
#include "tests/unit/control/proto_builders.h"

namespace ferry::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kSize = 4 << 20;   // f32; large: one chain over every input
const absl::Time kT0 = absl::FromUnixSeconds(1000);

proto::ReduceRequest Request(int inputs, uint32_t k = 0) {
  proto::ReduceRequest req;
  for (int i = 0; i < inputs; ++i) *req.add_inputs() = testing::TestRef("in" + std::to_string(i));
  *req.mutable_result() = testing::TestRef("out");
  req.set_num_objects(k);
  req.set_op(proto::SUM);
  req.set_dtype(proto::F32);
  req.set_timeout_ms(1000);
  return req;
}

proto::ReducePositionReport Report(const proto::ReducePosition& pos, bool ok) {
  proto::ReducePositionReport r;
  r.set_op_id(pos.op_id());
  r.set_position(pos.position());
  r.set_generation(pos.generation());
  r.set_ok(ok);
  return r;
}

TEST(ValidateReduceRequestTest, NamesEachProblem) {
  auto error = [](proto::ReduceRequest req) { return std::string(ValidateReduceRequest(req).message()); };
  EXPECT_TRUE(ValidateReduceRequest(Request(3)).ok());
  EXPECT_THAT(error(Request(0)), HasSubstr("input list is empty"));
  EXPECT_THAT(error(Request(2, 3)), HasSubstr("num_objects 3 is out of range"));
  proto::ReduceRequest dup = Request(2);
  *dup.mutable_inputs(1) = dup.inputs(0);
  EXPECT_THAT(error(dup), HasSubstr("ns/in0 is named twice"));
  proto::ReduceRequest bytes = Request(2);
  bytes.set_dtype(proto::BYTES);
  EXPECT_THAT(error(bytes), HasSubstr("not defined on dtype bytes"));
  proto::ReduceRequest op = Request(2);
  op.set_op(proto::REDUCE_OP_UNSPECIFIED);
  EXPECT_THAT(error(op), HasSubstr("unknown op 0"));
  op.set_op(static_cast<proto::ReduceOp>(257));   // would wrap to SUM as a uint8_t
  EXPECT_THAT(error(op), HasSubstr("unknown op 257"));
  proto::ReduceRequest dtype = Request(2);
  dtype.set_dtype(static_cast<proto::DType>(264));
  EXPECT_THAT(error(dtype), HasSubstr("unknown dtype 264"));
  proto::ReduceRequest ns = Request(2);
  ns.mutable_inputs(1)->set_ns("other");
  EXPECT_THAT(error(ns), HasSubstr("is not in namespace ns"));
  proto::ReduceRequest self = Request(2);
  self.mutable_inputs(1)->set_key("out");
  EXPECT_THAT(error(self), HasSubstr("is the result"));
}

class ReduceCollectiveTest : public ::testing::Test {
 protected:
  ReduceCollectiveTest() {
    for (NodeId id = 1; id <= 6; ++id) cluster_.Add(id);
  }
  // Input i published by node i + 1.
  void Publish(int i, uint64_t size = kSize, proto::DType dtype = proto::F32) {
    proto::ObjectMeta meta = testing::TestMeta(size, 10 + i);
    meta.set_dtype(dtype);
    ASSERT_TRUE(dir_.Publish(i + 1, testing::TestRef("in" + std::to_string(i)), meta, "", LinkModel{}, 4).ok());
  }
  // Input i, small i32 values held inline, published by node i + 1.
  void PublishInline(int i, const std::vector<int32_t>& values) {
    std::string bytes(values.size() * sizeof(int32_t), '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());
    proto::ObjectMeta meta = testing::TestMeta(bytes.size(), 50 + i);
    meta.set_dtype(proto::I32);
    ASSERT_TRUE(dir_.Publish(i + 1, testing::TestRef("in" + std::to_string(i)), meta, bytes, LinkModel{}, 4).ok());
  }
  Instructions Changed(ReduceCollective& op, int i) { return op.OnObjectChanged(ctx_, {"ns", "in" + std::to_string(i)}); }
  CollectiveContext& ctx() { return ctx_; }
  static std::vector<proto::ReducePosition> Positions(const Instructions& ins) {
    std::vector<proto::ReducePosition> out;
    for (const Instruction& i : ins) {
      if (i.msg->has_reduce()) out.push_back(i.msg->reduce());
    }
    return out;
  }

  FakeClusterView cluster_;
  Directory dir_{DirectoryOptions{}};
  CollectiveContext ctx_{cluster_, dir_, kT0, nullptr};
};

TEST_F(ReduceCollectiveTest, AChainReducesInTheOrderInputsArriveAndDropsItsPartialSums) {
  ReduceCollective op(7, Request(3), /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  Publish(1);   // input 1 first: the chain's tail (a leaf: no instruction)
  absl::StatusOr<Instructions> start = op.Start(ctx());
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_THAT(*start, IsEmpty());
  Publish(0);
  std::vector<proto::ReducePosition> mid = Positions(Changed(op, 0));
  ASSERT_EQ(mid.size(), 1u);
  EXPECT_EQ(mid[0].position(), 1u);
  ASSERT_EQ(mid[0].children_size(), 1);
  EXPECT_EQ(mid[0].children(0).node(), 2u);
  EXPECT_EQ(mid[0].children(0).partial().key(), "in1");   // a leaf's partial sum is its input
  EXPECT_EQ(mid[0].input().key(), "in0");
  EXPECT_FALSE(mid[0].is_root());
  Publish(2);
  std::vector<proto::ReducePosition> root = Positions(Changed(op, 2));
  ASSERT_EQ(root.size(), 1u);
  EXPECT_TRUE(root[0].is_root());
  EXPECT_EQ(root[0].partial().key(), "out");
  EXPECT_EQ(root[0].children(0).partial().key(), mid[0].partial().key());
  EXPECT_EQ(root[0].meta().size(), kSize);
  EXPECT_EQ(root[0].meta().count(), kSize / 4);
  EXPECT_THAT(op.OnReduceReport(ctx(), 1, Report(mid[0], true)), IsEmpty());
  EXPECT_FALSE(op.Done(ctx()));
  Instructions drops = op.OnReduceReport(ctx(), 3, Report(root[0], true));
  ASSERT_EQ(drops.size(), 1u);   // the interior partial sum on node 1
  EXPECT_EQ(drops[0].node, 1u);
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  EXPECT_TRUE(op.status().ok()) << op.status();
  EXPECT_THAT(op.reply().used(), ElementsAre(1u, 0u, 2u));
  EXPECT_EQ(op.reply().root_node(), 3u);
}

// Inputs published before the start are placed rack by rack: with racks alternating by node
// (1, 3, 5 in A; 2, 4, 6 in B) the chain is 1, 3, 5, then 2, 4, 6 (root), crossing racks once.
TEST_F(ReduceCollectiveTest, InputsPublishedAtTheStartArePlacedRackByRack) {
  for (NodeId id = 1; id <= 6; ++id) {
    (*const_cast<proto::NodeInfo*>(cluster_.Info(id))->mutable_labels())["rack"] = id % 2 == 1 ? "A" : "B";
  }
  for (int i = 0; i < 6; ++i) Publish(i);
  ReduceCollective op(7, Request(6), /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  absl::StatusOr<Instructions> start = op.Start(ctx());
  ASSERT_TRUE(start.ok()) << start.status();
  // Every non-leaf position names its child; walk the chain from the root down.
  std::map<uint64_t, uint64_t> child_of;
  uint64_t root = 0;
  for (const proto::ReducePosition& p : Positions(*start)) {
    const uint64_t node = std::stoull(p.input().key().substr(2)) + 1;   // input i is on node i + 1
    ASSERT_EQ(p.children_size(), 1) << "one chain";
    child_of[node] = p.children(0).node();
    if (p.is_root()) root = node;
  }
  std::vector<uint64_t> chain;   // root first
  for (uint64_t n = root; n != 0 && chain.size() < 7; n = child_of.contains(n) ? child_of[n] : 0) chain.push_back(n);
  EXPECT_EQ(chain, (std::vector<uint64_t>{6, 4, 2, 5, 3, 1}));
}

// ReduceRequest.root_node: the root is held for that node's input, even when it is published
// before the others and when every other input is ready first.
TEST_F(ReduceCollectiveTest, AChosenRootTakesTheRootAndANodeWithoutAnInputIsRefused) {
  proto::ReduceRequest req = Request(3);
  req.set_root_node(1);   // input 0's node
  ReduceCollective op(7, req, /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  Publish(1);
  Publish(2);
  absl::StatusOr<Instructions> start = op.Start(ctx());
  ASSERT_TRUE(start.ok()) << start.status();
  for (const proto::ReducePosition& p : Positions(*start)) EXPECT_FALSE(p.is_root()) << "the root waits for node 1";
  Publish(0);
  std::vector<proto::ReducePosition> root = Positions(Changed(op, 0));
  ASSERT_EQ(root.size(), 1u);
  EXPECT_TRUE(root[0].is_root());
  EXPECT_EQ(root[0].input().key(), "in0");

  proto::ReduceRequest elsewhere = Request(3);
  elsewhere.mutable_result()->set_key("out2");
  elsewhere.set_root_node(6);   // holds none of in0..in2 (on nodes 1..3)
  ReduceCollective none(8, elsewhere, /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  absl::StatusOr<Instructions> refused = none.Start(ctx());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("holds none of the inputs"));
  proto::ReduceRequest unknown = elsewhere;
  unknown.set_root_node(99);
  ReduceCollective ghost(9, unknown, /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  EXPECT_EQ(ghost.Start(ctx()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ReduceCollectiveTest, ASpareReplacesADeadInteriorNodeAndThePathRecomputes) {
  ReduceCollective op(7, Request(4, 3), false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  for (int i = 0; i < 4; ++i) Publish(i);   // chain 1 -> 2 -> 3 (root); node 4 a spare
  std::vector<proto::ReducePosition> first = Positions(*op.Start(ctx()));
  ASSERT_EQ(first.size(), 2u);   // positions 1 and 2 (0 is a leaf)
  // A stale report (an older generation) changes nothing.
  proto::ReducePositionReport stale = Report(first[1], true);
  stale.set_generation(0);
  EXPECT_THAT(op.OnReduceReport(ctx(), 3, stale), IsEmpty());
  cluster_.Kill(2);
  dir_.RemoveNode(2, "n2");
  std::vector<proto::ReducePosition> next = Positions(op.OnNodeDeath(ctx(), 2, "killed"));
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[0].position(), 1u);
  EXPECT_EQ(next[0].input().key(), "in3");   // the spare, on node 4
  EXPECT_TRUE(next[1].is_root());
  EXPECT_TRUE(next[1].recompute());
  EXPECT_EQ(next[1].generation(), 2u);
  EXPECT_EQ(next[1].children(0).node(), 4u);
  EXPECT_EQ(next[1].children(0).partial().key(), next[0].partial().key());
  // The old root's report is stale now.
  EXPECT_THAT(op.OnReduceReport(ctx(), 3, Report(first[1], true)), IsEmpty());
  EXPECT_FALSE(op.Done(ctx()));
  (void)op.OnReduceReport(ctx(), 4, Report(next[0], true));
  (void)op.OnReduceReport(ctx(), 3, Report(next[1], true));
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  EXPECT_THAT(op.reply().used(), ElementsAre(0u, 3u, 2u));
}

// AllReduce overlaps the result's broadcast with the reduce: once every input is placed and the
// root's position is sent, the result is filed with the root as the copy producing it, and every
// other participant is told to pull (cut-through from the root) before the root is done.
TEST_F(ReduceCollectiveTest, AllReduceBroadcastsTheResultWhileTheRootStillCombinesIt) {
  ReduceCollective op(7, Request(3), /*all=*/true, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  for (int i = 0; i < 3; ++i) Publish(i);   // chain 1 -> 2 -> 3 (root)
  absl::StatusOr<Instructions> start = op.Start(ctx());
  ASSERT_TRUE(start.ok()) << start.status();
  std::vector<proto::ReducePosition> positions = Positions(*start);
  ASSERT_EQ(positions.size(), 2u);
  ASSERT_TRUE(positions[1].is_root());
  const proto::ObjectRef out = testing::TestRef("out");
  EXPECT_TRUE(dir_.IsProducing(3, out));
  std::map<uint64_t, proto::PullInstruction> pulls;
  for (const Instruction& in : *start) {
    if (in.msg->has_pull()) pulls[in.node] = in.msg->pull();
  }
  ASSERT_EQ(pulls.size(), 2u);   // nodes 1 and 2; the root makes its own
  for (const auto& [node, pull] : pulls) {
    EXPECT_EQ(pull.broadcast_id(), 7u);
    EXPECT_EQ(pull.source().meta().incarnation(), positions[1].meta().incarnation());
    // Pre-attached, asking for the chunks the root tracks.
    EXPECT_EQ(pull.source().chunk_size(), positions[1].chunk_size());
  }
  const std::set<uint64_t> senders{pulls[1].source().sender(), pulls[2].source().sender()};
  EXPECT_TRUE(senders.contains(3)) << "no participant pulls from the producing root";
  // The root publishes the result when it holds all of it; its report needs no new broadcast.
  ASSERT_TRUE(dir_.Publish(3, out, positions[1].meta(), "", LinkModel{}, 2).ok());
  EXPECT_FALSE(dir_.IsProducing(3, out));
  (void)op.OnReduceReport(ctx(), 1, Report(positions[0], true));
  Instructions after = op.OnReduceReport(ctx(), 3, Report(positions[1], true));
  for (const Instruction& in : after) EXPECT_FALSE(in.msg->has_pull()) << "broadcast started twice";
  EXPECT_FALSE(op.Done(ctx()));
  for (NodeId n : {1, 2}) EXPECT_TRUE(dir_.Completed(n, out, positions[1].meta().incarnation()));
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  ASSERT_TRUE(op.status().ok()) << op.status();
  ASSERT_EQ(op.reply().results_size(), 3);
  for (const proto::BroadcastResult& r : op.reply().results()) EXPECT_TRUE(r.ok()) << r.error();
}

// A failure that rebuilds the root's partial sum stops the overlapped broadcast: the result's
// entry and every copy pulled of it go, the root rebuilds under a fresh incarnation, and the
// result is broadcast once the root is done; late reports about the old copies change nothing.
TEST_F(ReduceCollectiveTest, ARebuiltRootStopsTheOverlappedBroadcastAndTheResultIsSentAgain) {
  ReduceCollective op(7, Request(4, 3), /*all=*/true, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  for (int i = 0; i < 4; ++i) Publish(i);   // chain 1 -> 2 -> 3 (root); node 4 a spare
  absl::StatusOr<Instructions> start = op.Start(ctx());
  ASSERT_TRUE(start.ok()) << start.status();
  const std::vector<proto::ReducePosition> first = Positions(*start);
  ASSERT_EQ(first.size(), 2u);
  const uint64_t old_incarnation = first[1].meta().incarnation();
  const proto::ObjectRef out = testing::TestRef("out");
  ASSERT_TRUE(dir_.IsProducing(3, out));
  cluster_.Kill(2);
  dir_.RemoveNode(2, "n2");
  Instructions replan = op.OnNodeDeath(ctx(), 2, "killed");
  std::set<uint64_t> dropped;
  size_t drops_before_root = 0;
  bool root_seen = false;
  proto::ReducePosition root;
  for (const Instruction& in : replan) {
    if (in.msg->has_drop() && in.msg->drop().ref().key() == "out") {
      EXPECT_EQ(in.msg->drop().incarnation(), old_incarnation);   // never the rebuilt result
      dropped.insert(in.node);
      if (!root_seen) ++drops_before_root;
    }
    if (in.msg->has_reduce() && in.msg->reduce().is_root()) {
      root_seen = true;
      root = in.msg->reduce();
    }
    EXPECT_FALSE(in.msg->has_pull()) << "a new broadcast before the rebuilt root is done";
  }
  ASSERT_TRUE(root_seen);
  EXPECT_EQ(dropped, (std::set<uint64_t>{1, 3, 4}));   // the pre-attached receivers and the root
  EXPECT_EQ(drops_before_root, dropped.size());        // before the root's new generation
  EXPECT_TRUE(root.recompute());
  EXPECT_NE(root.meta().incarnation(), old_incarnation);
  EXPECT_FALSE(dir_.Locate(out).ok());
  // A receiver's late report about its dropped copy of the old incarnation is ignored.
  proto::ReportTransferRequest late;
  late.set_node_id(1);
  *late.mutable_ref() = out;
  late.set_outcome(proto::ReportTransferRequest::ABORTED);
  late.set_incarnation(old_incarnation);
  late.set_op_id(7);
  EXPECT_THAT(op.OnReport(ctx(), late), IsEmpty());
  // The rebuilt root finishes and publishes: now the result goes to the live participants.
  std::vector<proto::ReducePosition> next = Positions(replan);
  for (const proto::ReducePosition& p : next) {
    if (!p.is_root()) (void)op.OnReduceReport(ctx(), 4, Report(p, true));
  }
  ASSERT_TRUE(dir_.Publish(3, out, root.meta(), "", LinkModel{}, 2).ok());
  Instructions sent = op.OnReduceReport(ctx(), 3, Report(root, true));
  std::set<uint64_t> targets;
  for (const Instruction& in : sent) {
    if (!in.msg->has_pull()) continue;
    EXPECT_EQ(in.msg->pull().source().meta().incarnation(), root.meta().incarnation());
    targets.insert(in.node);
  }
  EXPECT_EQ(targets, (std::set<uint64_t>{1, 4}));
  EXPECT_THAT(op.OnReport(ctx(), late), IsEmpty());   // still stale after the new broadcast started
  for (NodeId n : {1, 4}) EXPECT_TRUE(dir_.Completed(n, out, root.meta().incarnation()));
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_THAT(op.reply().used(), ElementsAre(0u, 3u, 2u));
}

// An AllReduce that fails while its result is being broadcast leaves no entry for the result.
TEST_F(ReduceCollectiveTest, AnOverlappedAllReduceThatTimesOutLeavesNoResultEntry) {
  ReduceCollective op(7, Request(3), /*all=*/true, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  for (int i = 0; i < 3; ++i) Publish(i);
  ASSERT_TRUE(op.Start(ctx()).ok());
  ASSERT_TRUE(dir_.IsProducing(3, testing::TestRef("out")));
  op.Conclude(ctx(), Conclusion::kDeadline);
  EXPECT_EQ(op.status().code(), absl::StatusCode::kDeadlineExceeded) << op.status();
  EXPECT_FALSE(dir_.Locate(testing::TestRef("out")).ok());
}

// Inputs small enough to be held inline are combined by the coordinator itself: no positions,
// the result's bytes pushed to every participant (AllReduce) in one inline instruction each.
TEST_F(ReduceCollectiveTest, SmallInputsAreCombinedByTheCoordinatorAndPushedInline) {
  proto::ReduceRequest req = Request(3);
  req.set_dtype(proto::I32);
  ReduceCollective op(7, req, /*all=*/true, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  PublishInline(0, {10, 11, 12, 13});
  PublishInline(1, {20, 21, 22, 23});
  absl::StatusOr<Instructions> start = op.Start(ctx());
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_THAT(*start, IsEmpty());   // two of three: nothing to send yet
  PublishInline(2, {30, 31, 32, 33});
  Instructions pushes = Changed(op, 2);
  ASSERT_EQ(pushes.size(), 3u);
  const int32_t want[4] = {60, 63, 66, 69};
  std::set<uint64_t> targets;
  uint64_t incarnation = 0;
  for (const Instruction& in : pushes) {
    ASSERT_TRUE(in.msg->has_pull());
    const proto::PullInstruction& pull = in.msg->pull();
    EXPECT_EQ(pull.ref().key(), "out");
    EXPECT_TRUE(pull.is_inline());
    ASSERT_EQ(pull.inline_data().size(), sizeof want);
    EXPECT_EQ(std::memcmp(pull.inline_data().data(), want, sizeof want), 0);
    EXPECT_EQ(pull.meta().dtype(), proto::I32);
    incarnation = pull.meta().incarnation();
    targets.insert(in.node);
  }
  EXPECT_EQ(targets, (std::set<uint64_t>{1, 2, 3}));
  EXPECT_FALSE(op.Done(ctx()));
  for (NodeId n : {1, 2, 3}) EXPECT_TRUE(dir_.Completed(n, testing::TestRef("out"), incarnation));
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_THAT(op.reply().used(), ElementsAre(0u, 1u, 2u));
  EXPECT_EQ(op.reply().root_node(), 3u);
  EXPECT_EQ(op.reply().results_size(), 3);
  for (const proto::BroadcastResult& r : op.reply().results()) EXPECT_TRUE(r.ok()) << r.error();
}

// A small Reduce asked by a node holding an input it uses: that node is the root and the result
// comes back in the reply (no push to wait for); it is recorded as receiving the inline object.
TEST_F(ReduceCollectiveTest, ASmallReduceRootedAtItsRequesterAnswersWithTheBytes) {
  proto::ReduceRequest req = Request(3);
  req.set_dtype(proto::I32);
  req.set_requester(1);   // holds input 0
  ReduceCollective op(7, req, /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  PublishInline(0, {1, 2});
  PublishInline(1, {10, 20});
  ASSERT_TRUE(op.Start(ctx()).ok());
  PublishInline(2, {100, 200});
  EXPECT_THAT(Changed(op, 2), IsEmpty());   // nothing pushed
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(op.reply().root_node(), 1u);
  ASSERT_TRUE(op.reply().store_result());
  const int32_t want[2] = {111, 222};
  ASSERT_EQ(op.reply().result_data().size(), sizeof want);
  EXPECT_EQ(std::memcmp(op.reply().result_data().data(), want, sizeof want), 0);
  EXPECT_TRUE(dir_.HasCopy(1, testing::TestRef("out")));   // a Delete reaches it
  EXPECT_TRUE(dir_.Completed(1, testing::TestRef("out"), op.reply().meta().incarnation()));
  EXPECT_TRUE(dir_.IsComplete(1, testing::TestRef("out")));

  // A requester with no input used (or an AllReduce) gets the result pushed as before.
  proto::ReduceRequest other = Request(2);
  other.set_dtype(proto::I32);
  *other.mutable_result() = testing::TestRef("out2");
  other.set_requester(3);
  ReduceCollective pushed(8, other, /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  ASSERT_TRUE(pushed.Start(ctx()).ok());
  EXPECT_FALSE(pushed.Done(ctx()));
}

// The inline path with a chosen root and k < n: the root's input is always one of the k (the
// others are spares once k - 1 are combined), and only the root is sent the result.
TEST_F(ReduceCollectiveTest, SmallInputsWithAChosenRootAlwaysUseItsInput) {
  proto::ReduceRequest req = Request(4, /*k=*/2);
  req.set_dtype(proto::I32);
  req.set_root_node(4);   // input 3's node
  ReduceCollective op(7, req, /*all=*/false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  PublishInline(0, {5});
  PublishInline(1, {7});   // a spare: one place is left besides the root's
  ASSERT_TRUE(op.Start(ctx()).ok());
  PublishInline(2, {9});
  EXPECT_THAT(Changed(op, 2), IsEmpty());
  PublishInline(3, {100});
  Instructions pushes = Changed(op, 3);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushes[0].node, 4u);
  int32_t got = 0;
  ASSERT_EQ(pushes[0].msg->pull().inline_data().size(), sizeof got);
  std::memcpy(&got, pushes[0].msg->pull().inline_data().data(), sizeof got);
  EXPECT_EQ(got, 105);
  EXPECT_TRUE(dir_.Completed(4, testing::TestRef("out"), pushes[0].msg->pull().meta().incarnation()));
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_THAT(op.reply().used(), ElementsAre(0u, 3u));
  EXPECT_EQ(op.reply().root_node(), 4u);
  EXPECT_EQ(op.reply().results_size(), 0);   // a reduce reports no copies
}

TEST_F(ReduceCollectiveTest, ALostInputWithNoSpareFailsAtOnceNamingIt) {
  ReduceCollective op(7, Request(3), false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  for (int i = 0; i < 3; ++i) Publish(i);
  ASSERT_TRUE(op.Start(ctx()).ok());
  cluster_.Kill(2);
  dir_.RemoveNode(2, "n2");
  // The failed reduce drops what it built: the root's unfinished result (node 2's partial
  // sum died with it; position 0 is a leaf and built nothing).
  Instructions drops = op.OnNodeDeath(ctx(), 2, "killed");
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].node, 3u);
  ASSERT_TRUE(drops[0].msg->has_drop());
  EXPECT_EQ(drops[0].msg->drop().ref().key(), "out");
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  EXPECT_EQ(op.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(op.status().message()), HasSubstr("ns/in1 (node 2 died: killed)"));
}

TEST_F(ReduceCollectiveTest, MismatchedInputsAndTheDeadlineAreNamed) {
  ReduceCollective op(7, Request(3), false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  Publish(0);
  ASSERT_TRUE(op.Start(ctx()).ok());
  Publish(1, kSize + 4);
  (void)Changed(op, 1);
  ASSERT_TRUE(op.Done(ctx()));
  op.Conclude(ctx(), Conclusion::kDone);
  EXPECT_EQ(op.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(op.status().message()), HasSubstr("has 4194308 bytes, the inputs before it 4194304"));

  proto::ReduceRequest never = Request(3);
  for (proto::ObjectRef& r : *never.mutable_inputs()) r.set_key("never-" + r.key());
  ReduceCollective late(8, never, false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  ASSERT_TRUE(late.Start(ctx()).ok());
  EXPECT_FALSE(late.Done(ctx()));
  late.Conclude(ctx(), Conclusion::kDeadline);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("no input became ready"));
}

TEST_F(ReduceCollectiveTest, AnExistingResultIsRefused) {
  ASSERT_TRUE(dir_.Publish(5, testing::TestRef("out"), testing::TestMeta(kSize, 3), "", LinkModel{}, 4).ok());
  ReduceCollective op(7, Request(2), false, kT0, kT0 + absl::Seconds(1), LinkModel{}, PlanLimits{});
  EXPECT_EQ(op.Start(ctx()).status().code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace ferry::control
