// Tests of control/collectives/batch_broadcast: the plan of a batch (groups, one instruction per
// target, chain order), progress reports, sender failures, deaths and per-entry errors, over a
// real Directory and a fake cluster view.
#include <string>
#include <vector>

#include "control/collectives/batch_broadcast.h"
#include "gmock/gmock.h"
#include "tests/unit/control/proto_builders.h"
#include "gtest/gtest.h"
#include "tests/unit/control/fake_cluster_view.h"

namespace ferry::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

proto::ObjectRef Ref(const std::string& key) { return testing::TestRef(key); }

proto::ObjectMeta Meta(uint64_t size) { return testing::TestMeta(size, /*incarnation=*/5); }

const proto::BatchPullInstruction& Pull(const Instruction& ins) { return ins.msg->batch_pull(); }

std::vector<uint32_t> Indices(const proto::BatchPullInstruction& pull) {
  std::vector<uint32_t> out;
  for (const proto::BatchEntry& e : pull.entries()) out.push_back(e.index());
  return out;
}

class BatchBroadcastTest : public ::testing::Test {
 protected:
  BatchBroadcastTest() {
    for (NodeId id = 1; id <= 5; ++id) cluster_.Add(id);
  }
  CollectiveContext Ctx() { return CollectiveContext{cluster_, dir_, now_, &attached_, &batches_}; }
  void Publish(NodeId node, const std::string& key, uint64_t size) {
    // Small objects are published with their bytes (inline), as ferryd does.
    const std::string bytes = size <= DirectoryOptions{}.inline_max_bytes ? std::string(size, 'x') : "";
    absl::Status s = dir_.Publish(node, Ref(key), Meta(size), bytes, LinkModel{}, 4);
    ASSERT_TRUE(s.ok()) << s;
  }
  std::unique_ptr<BatchBroadcastCollective> Make(const std::vector<std::string>& keys, std::vector<NodeId> targets,
                                                 PlanLimits limits = {}, OpId id = 9) {
    proto::BroadcastBatchRequest req;
    for (const std::string& k : keys) *req.add_refs() = Ref(k);
    for (NodeId t : targets) req.add_node_ids(t);
    req.set_wait(true);
    req.set_timeout_ms(10000);
    // A large total: the cost model chooses a chain (fanout 1).
    return std::make_unique<BatchBroadcastCollective>(id, req, kT0, kT0 + absl::Seconds(10), LinkModel{}, limits);
  }
  proto::BatchReport Report(NodeId sender, std::vector<uint32_t> completed, bool final = true) {
    proto::BatchReport r;
    r.set_op_id(9);
    r.set_sender(sender);
    for (uint32_t i : completed) r.add_completed(i);
    r.set_final(final);
    return r;
  }

  FakeClusterView cluster_;
  Directory dir_{DirectoryOptions{}};
  absl::Time now_ = kT0;
  std::atomic<uint64_t> attached_{0};
  InFlightBatches batches_;
};

TEST_F(BatchBroadcastTest, OneInstructionPerTargetAlongAChainInRequestOrder) {
  for (int i = 0; i < 3; ++i) Publish(1, "w" + std::to_string(i), 64 << 20);
  auto op = Make({"w0", "w1", "w2"}, {2, 3, 4});
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op->Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  ASSERT_THAT(*ins, SizeIs(3));
  // A chain: 2 pulls from the source, 3 from 2, 4 from 3; every entry in request order.
  EXPECT_EQ((*ins)[0].node, 2u);
  EXPECT_EQ(Pull((*ins)[0]).sender(), 1u);
  EXPECT_EQ(Pull((*ins)[1]).sender(), 2u);
  EXPECT_EQ(Pull((*ins)[2]).sender(), 3u);
  EXPECT_THAT(Indices(Pull((*ins)[2])), ElementsAre(0, 1, 2));
  EXPECT_EQ(Pull((*ins)[0]).op_id(), 9u);
  EXPECT_EQ(Pull((*ins)[0]).sender_address(), "addr-1");
  EXPECT_EQ(Pull((*ins)[0]).entries(1).meta().size(), 64u << 20);
  EXPECT_FALSE(op->Done(ctx));

  for (NodeId n : {2, 3, 4}) {
    EXPECT_THAT(op->OnBatchReport(ctx, n, Report(n - 1, {0, 1, 2})), IsEmpty());
  }
  EXPECT_TRUE(op->Done(ctx));
  // The copies are in the directory: a later Get may pull from any of them.
  EXPECT_TRUE(dir_.IsComplete(4, Ref("w2")));
  op->Conclude(ctx, Conclusion::kDone);
  ASSERT_THAT(op->reply().results(), SizeIs(3));
  for (const proto::BroadcastResult& r : op->reply().results()) EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_THAT(op->reply().errors(), IsEmpty());
  EXPECT_EQ(op->reply().bytes(), 3u * (64 << 20));
}

TEST_F(BatchBroadcastTest, AnUnknownEntryFailsAloneAndTargetsHoldingEverythingAreSkipped) {
  Publish(1, "a", 4096);
  Publish(1, "b", 4096);
  auto op = Make({"a", "missing", "b"}, {1, 2});
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op->Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  ASSERT_THAT(*ins, SizeIs(1));   // node 1 holds both already
  EXPECT_THAT(Indices(Pull((*ins)[0])), ElementsAre(0, 2));
  (void)op->OnBatchReport(ctx, 2, Report(1, {0, 2}));
  ASSERT_TRUE(op->Done(ctx));
  op->Conclude(ctx, Conclusion::kDone);
  ASSERT_THAT(op->reply().errors(), SizeIs(1));
  EXPECT_EQ(op->reply().errors(0).index(), 1u);
  EXPECT_EQ(op->reply().errors(0).node_id(), 0u);
  EXPECT_EQ(op->reply().errors(0).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_THAT(op->reply().errors(0).error(), HasSubstr("ns/missing"));
  // Each target lacks the missing entry: both say so.
  EXPECT_THAT(op->reply().results(0).error(), HasSubstr("1 of 3 entries failed"));
}

TEST_F(BatchBroadcastTest, EntriesHeldByDifferentNodesFormGroupsWithTheirOwnSources) {
  Publish(1, "a", 4096);
  Publish(2, "b", 4096);
  Publish(2, "c", 4096);
  auto op = Make({"a", "b", "c"}, {3});
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op->Start(ctx);
  ASSERT_TRUE(ins.ok());
  ASSERT_THAT(*ins, SizeIs(2));
  // Node 2 holds most: its group first.
  EXPECT_EQ(Pull((*ins)[0]).sender(), 2u);
  EXPECT_THAT(Indices(Pull((*ins)[0])), ElementsAre(1, 2));
  EXPECT_EQ(Pull((*ins)[1]).sender(), 1u);
  EXPECT_THAT(Indices(Pull((*ins)[1])), ElementsAre(0));
  (void)op->OnBatchReport(ctx, 3, Report(2, {1, 2}));
  EXPECT_FALSE(op->Done(ctx));
  (void)op->OnBatchReport(ctx, 3, Report(1, {0}));
  EXPECT_TRUE(op->Done(ctx));
}

TEST_F(BatchBroadcastTest, ASenderFailureReattachesTheTargetWithWhatItStillLacks) {
  for (int i = 0; i < 4; ++i) Publish(1, "w" + std::to_string(i), 64 << 20);
  auto op = Make({"w0", "w1", "w2", "w3"}, {2, 3, 4});
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op->Start(ctx).ok());
  // Node 3 (pulling from 2) got two entries, then node 2 died.
  cluster_.Kill(2);
  EXPECT_THAT(op->OnNodeDeath(ctx, 2, "killed"), IsEmpty());
  (void)op->OnBatchReport(ctx, 3, Report(2, {0, 1}, /*final=*/false));
  proto::BatchReport failed = Report(2, {}, true);
  failed.set_sender_failed(true);
  failed.set_detail("peer gone");
  Instructions again = op->OnBatchReport(ctx, 3, failed);
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].node, 3u);
  EXPECT_EQ(Pull(again[0]).sender(), 1u);   // the only copy left (4 is below 3)
  EXPECT_THAT(Indices(Pull(again[0])), ElementsAre(2, 3));
  // A late report about the old sender's instruction counts its completions only.
  (void)op->OnBatchReport(ctx, 3, Report(2, {2}, true));
  EXPECT_FALSE(op->Done(ctx));
  (void)op->OnBatchReport(ctx, 3, Report(1, {3}));
  (void)op->OnBatchReport(ctx, 4, Report(3, {0, 1, 2, 3}));
  ASSERT_TRUE(op->Done(ctx));
  op->Conclude(ctx, Conclusion::kDone);
  EXPECT_FALSE(op->reply().results(0).ok());   // node 2 died
  EXPECT_THAT(op->reply().results(0).error(), HasSubstr("node died: killed"));
  EXPECT_TRUE(op->reply().results(1).ok()) << op->reply().results(1).error();
  EXPECT_TRUE(op->reply().results(2).ok()) << op->reply().results(2).error();
}

TEST_F(BatchBroadcastTest, ALaterBatchOfTheSameObjectsJoinsTheChainInFlight) {
  for (int i = 0; i < 3; ++i) Publish(1, "w" + std::to_string(i), 64 << 20);
  CollectiveContext ctx = Ctx();
  auto first = Make({"w0", "w1", "w2"}, {2, 3}, {}, 9);
  ASSERT_TRUE(first->Start(ctx).ok());   // 1 -> 2 -> 3
  // A receiver asking later (a GetBatch: the same objects, in another order) extends the chain
  // at its tail instead of pulling from the source a second time.
  auto late = Make({"w2", "w0", "w1"}, {4}, {}, 10);
  absl::StatusOr<Instructions> ins = late->Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  ASSERT_THAT(*ins, SizeIs(1));
  EXPECT_EQ(Pull((*ins)[0]).sender(), 3u);
  // And the next one joins behind it.
  auto later = Make({"w0", "w1", "w2"}, {5}, {}, 11);
  ins = later->Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  EXPECT_EQ(Pull((*ins)[0]).sender(), 4u);
  // Other objects: no chain to join.
  auto other = Make({"w0"}, {5}, {}, 12);
  ins = other->Start(ctx);
  ASSERT_TRUE(ins.ok()) << ins.status();
  EXPECT_EQ(Pull((*ins)[0]).sender(), 1u);
  other->Conclude(ctx, Conclusion::kCancelled);

  // The seed dies: the joiner re-attaches within its own operation, to the source.
  cluster_.Kill(3);
  (void)first->OnNodeDeath(ctx, 3, "killed");
  (void)late->OnNodeDeath(ctx, 3, "killed");
  proto::BatchReport failed;
  failed.set_op_id(10);
  failed.set_sender(3);
  failed.set_sender_failed(true);
  failed.set_final(true);
  Instructions again = late->OnBatchReport(ctx, 4, failed);
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(Pull(again[0]).sender(), 1u);
  // Once the operations end, nothing is left to join.
  for (auto* op : {first.get(), late.get(), later.get()}) op->Conclude(ctx, Conclusion::kCancelled);
  EXPECT_EQ(batches_.size(), 0u);
}

TEST(InFlightBatchesTest, SeedsAreTheNewestLiveTargetOfTheSameObjectsAndSource) {
  InFlightBatches b;
  const auto objects = InFlightBatches::MakeObjects("ns", {"b", "a"});
  b.Register(1, 0, /*source=*/7, objects, {2, 3});
  b.Register(2, 0, 7, InFlightBatches::MakeObjects("ns", {"a", "b"}), {4});
  b.Register(3, 0, 8, objects, {5});   // another source
  auto alive = [](NodeId n) { return n != 4; };
  EXPECT_EQ(b.Seed(7, objects, {}, alive), 3u);   // 4 is dead
  EXPECT_EQ(b.Seed(7, objects, {3}, alive), 2u);
  EXPECT_EQ(b.Seed(8, objects, {}, alive), 5u);
  EXPECT_EQ(b.Seed(7, InFlightBatches::MakeObjects("ns", {"a"}), {}, alive), 0u);
  EXPECT_EQ(b.Seed(7, InFlightBatches::MakeObjects("other", {"a", "b"}), {}, alive), 0u);
  b.Unregister(1);
  EXPECT_EQ(b.Seed(7, objects, {}, alive), 0u);
  EXPECT_EQ(b.Seed(7, objects, {}, [](NodeId) { return true; }), 4u);
}

TEST_F(BatchBroadcastTest, FailedEntriesAreReportedPerTargetAndEndTheTargetsShare) {
  Publish(1, "a", 4096);
  Publish(1, "b", 4096);
  auto op = Make({"a", "b"}, {2});
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op->Start(ctx).ok());
  proto::BatchReport r = Report(1, {0});
  proto::BatchEntryError* e = r.add_failed();
  e->set_index(1);
  e->set_code(static_cast<int>(absl::StatusCode::kDataLoss));
  e->set_error("checksum mismatch");
  (void)op->OnBatchReport(ctx, 2, r);
  ASSERT_TRUE(op->Done(ctx));
  op->Conclude(ctx, Conclusion::kDone);
  ASSERT_THAT(op->reply().errors(), SizeIs(1));
  EXPECT_EQ(op->reply().errors(0).node_id(), 2u);
  EXPECT_EQ(op->reply().errors(0).code(), static_cast<int>(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(op->reply().results(0).ok());
}

TEST_F(BatchBroadcastTest, AFinalReportWithEntriesMissingFailsThem) {
  Publish(1, "a", 4096);
  Publish(1, "b", 4096);
  auto op = Make({"a", "b"}, {2});
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op->Start(ctx).ok());
  (void)op->OnBatchReport(ctx, 2, Report(1, {0}, /*final=*/true));
  ASSERT_TRUE(op->Done(ctx));
  op->Conclude(ctx, Conclusion::kDone);
  ASSERT_THAT(op->reply().errors(), SizeIs(1));
  EXPECT_EQ(op->reply().errors(0).index(), 1u);
  EXPECT_THAT(op->reply().errors(0).error(), HasSubstr("ended its pull without ns/b"));
}

TEST_F(BatchBroadcastTest, AtTheDeadlineUnfinishedTargetsSayHowManyEntriesAreMissing) {
  Publish(1, "a", 4096);
  Publish(1, "b", 4096);
  auto op = Make({"a", "b"}, {2, 3});
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op->Start(ctx).ok());
  (void)op->OnBatchReport(ctx, 2, Report(1, {0, 1}));
  EXPECT_FALSE(op->Done(ctx));
  op->Conclude(ctx, Conclusion::kDeadline);
  EXPECT_TRUE(op->reply().results(0).ok());
  EXPECT_FALSE(op->reply().results(1).ok());
  EXPECT_THAT(op->reply().results(1).error(), HasSubstr("timed out with 2 of 2 entries still missing"));
}

TEST_F(BatchBroadcastTest, ALargeShareIsSplitIntoSeveralInstructions) {
  std::vector<std::string> keys;
  for (size_t i = 0; i < kMaxEntriesPerInstruction + 10; ++i) {
    keys.push_back("k" + std::to_string(i));
    Publish(1, keys.back(), 4096);
  }
  auto op = Make(keys, {2});
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op->Start(ctx);
  ASSERT_TRUE(ins.ok());
  ASSERT_THAT(*ins, SizeIs(2));
  EXPECT_EQ(static_cast<size_t>(Pull((*ins)[0]).entries_size()), kMaxEntriesPerInstruction);
  EXPECT_EQ(Pull((*ins)[1]).entries_size(), 10);
  EXPECT_EQ(Pull((*ins)[1]).entries(0).index(), kMaxEntriesPerInstruction);
}

TEST_F(BatchBroadcastTest, AnUnregisteredTargetFailsTheCall) {
  Publish(1, "a", 4096);
  auto op = Make({"a"}, {2, 42});
  CollectiveContext ctx = Ctx();
  absl::StatusOr<Instructions> ins = op->Start(ctx);
  ASSERT_FALSE(ins.ok());
  EXPECT_EQ(ins.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ins.status().message(), HasSubstr("node 42 is not registered"));
}

TEST_F(BatchBroadcastTest, ATargetThatDiesIsFailedAndTheOthersFinish) {
  Publish(1, "a", 64 << 20);
  auto op = Make({"a"}, {2, 3});
  CollectiveContext ctx = Ctx();
  ASSERT_TRUE(op->Start(ctx).ok());
  cluster_.Kill(3);
  (void)op->OnNodeDeath(ctx, 3, "SIGKILL");
  EXPECT_FALSE(op->Done(ctx));
  (void)op->OnBatchReport(ctx, 2, Report(1, {0}));
  ASSERT_TRUE(op->Done(ctx));
  op->Conclude(ctx, Conclusion::kDone);
  EXPECT_TRUE(op->reply().results(0).ok());
  EXPECT_THAT(op->reply().results(1).error(), HasSubstr("SIGKILL"));
}

}  // namespace
}  // namespace ferry::control
