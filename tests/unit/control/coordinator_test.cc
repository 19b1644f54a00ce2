// Tests of control/coordinator.h through control/service/coordinator_service.h, over gRPC's
// in-process channel (no port, no other process). Fake nodes are Session streams driven by the
// test: it reads what the coordinator pushes and answers as a ferryd would. Every wait is on an
// event (a reply, a message on a stream, the end of a stream), never on time.
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "control/service/coordinator_service.h"
#include "proto/membership_delta.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/spdlog.h"

namespace ferry::control {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kBig = 1 << 20;   // above the inline limit

proto::ObjectRef Ref(const std::string& key) {
  proto::ObjectRef ref;
  ref.set_ns("ns");
  ref.set_key(key);
  return ref;
}

class FakeNode {
 public:
  FakeNode(proto::Coordinator::Stub* stub, uint64_t id) : id_(id) {
    stream_ = stub->Session(&ctx_);
    proto::NodeMessage hello;
    proto::NodeInfo* info = hello.mutable_hello()->mutable_node();
    info->set_node_id(id);
    info->set_name("node-" + std::to_string(id));
    info->set_dp_address("addr-" + std::to_string(id));
    EXPECT_TRUE(stream_->Write(hello));
    proto::CoordMessage first;
    EXPECT_TRUE(stream_->Read(&first));
    EXPECT_TRUE(first.has_welcome());
  }
  ~FakeNode() {
    if (finished_) return;
    ctx_.TryCancel();
    (void)End();
  }
  // The next message that is not a Membership; false if the stream ended.
  bool NextInstruction(proto::CoordMessage* m) {
    while (stream_->Read(m)) {
      if (!m->has_membership()) return true;
    }
    return false;
  }
  // Reads until the stream ends; its status.
  grpc::Status End() {
    proto::CoordMessage m;
    while (stream_->Read(&m)) {
    }
    finished_ = true;
    return stream_->Finish();
  }
  void Send(const proto::NodeMessage& m) { EXPECT_TRUE(stream_->Write(m)); }
  // Reads Membership messages, applying each as ferryd does, until the view holds `peers`
  // other nodes; the Membership messages read (the Welcome's snapshot included), or -1 if the
  // stream ended or a message did not apply (a gap).
  int ReadMembershipUntil(size_t peers, uint64_t* epoch, std::vector<proto::Membership>* seen) {
    std::map<uint64_t, std::string> view;
    int count = 0;
    proto::CoordMessage m;
    while (view.size() < peers || count == 0) {
      if (!stream_->Read(&m)) return -1;
      if (!m.has_membership()) continue;
      ++count;
      seen->push_back(m.membership());
      if (!proto::ApplyMembership(m.membership(), id_, epoch, &view).ok()) return -1;
    }
    return count;
  }
  uint64_t id() const { return id_; }

 private:
  const uint64_t id_;
  bool finished_ = false;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<proto::NodeMessage, proto::CoordMessage>> stream_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void StartCoordinator(absl::Duration liveness = absl::Hours(1), absl::Duration coalesce = absl::Milliseconds(20)) {
    spdlog::set_level(spdlog::level::warn);
    CoordinatorOptions o;
    o.membership_coalesce = coalesce;
    o.liveness_timeout = liveness;
    o.heartbeat_interval = std::min(absl::Milliseconds(500), liveness / 4);
    service_ = std::make_unique<CoordinatorService>(o);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = proto::Coordinator::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    nodes_.clear();
    if (service_) service_->Shutdown();
    if (server_) server_->Shutdown();
  }
  FakeNode& AddNode(uint64_t id) {
    nodes_.push_back(std::make_unique<FakeNode>(stub_.get(), id));
    return *nodes_.back();
  }
  grpc::Status PublishBig(uint64_t node, const std::string& key) {
    proto::PublishRequest req;
    req.set_node_id(node);
    *req.mutable_ref() = Ref(key);
    req.mutable_meta()->set_size(kBig);
    req.mutable_meta()->set_count(kBig);
    req.mutable_meta()->set_incarnation(5);
    proto::PublishReply reply;
    grpc::ClientContext ctx;
    return stub_->Publish(&ctx, req, &reply);
  }
  static proto::ReportTransferRequest ReportOf(uint64_t node, const std::string& key,
                                               proto::ReportTransferRequest::Outcome outcome, uint64_t op_id,
                                               const std::string& detail) {
    proto::ReportTransferRequest req;
    req.set_node_id(node);
    *req.mutable_ref() = Ref(key);
    req.set_outcome(outcome);
    req.set_op_id(op_id);
    req.set_detail(detail);
    req.set_incarnation(5);
    return req;
  }
  grpc::Status Report(uint64_t node, const std::string& key, proto::ReportTransferRequest::Outcome outcome,
                      uint64_t op_id, const std::string& detail = "") {
    proto::ReportTransferReply reply;
    grpc::ClientContext ctx;
    return stub_->ReportTransfer(&ctx, ReportOf(node, key, outcome, op_id, detail), &reply);
  }
  // Starts a waiting Broadcast of `key` to `targets`; `ctx` and `reply` must outlive the call.
  std::future<grpc::Status> StartBroadcast(const std::string& key, const std::vector<uint64_t>& targets,
                                           grpc::ClientContext* ctx, proto::BroadcastReply* reply) {
    auto req = std::make_shared<proto::BroadcastRequest>();
    *req->mutable_ref() = Ref(key);
    for (uint64_t t : targets) req->add_node_ids(t);
    req->set_wait(true);
    req->set_timeout_ms(600000);
    return std::async(std::launch::async, [this, req, ctx, reply] { return stub_->Broadcast(ctx, *req, reply); });
  }

  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<proto::Coordinator::Stub> stub_;
  std::vector<std::unique_ptr<FakeNode>> nodes_;
};

TEST_F(CoordinatorTest, ARegistrationBurstLeavesAsOneMergedDeltaAndEveryViewStaysContiguous) {
  // A long interval, so that the five registrations below all fall inside it.
  StartCoordinator(absl::Hours(1), /*coalesce=*/absl::Seconds(3));
  FakeNode& first = AddNode(1);   // after a quiet interval: its delta (to nobody) goes out at once
  for (uint64_t id = 2; id <= 6; ++id) AddNode(id);
  uint64_t epoch = 0;
  std::vector<proto::Membership> seen;
  // Its snapshot, then one delta merging the five joins (not five deltas).
  ASSERT_EQ(first.ReadMembershipUntil(5, &epoch, &seen), 2);
  EXPECT_TRUE(seen[0].full());
  EXPECT_EQ(seen[1].added_size(), 5);
  EXPECT_EQ(seen[1].first_epoch(), seen[0].epoch() + 1);
  // The nodes that joined during the burst hold snapshots at their own epochs; each gets the
  // merge of what followed it, so their views are contiguous and complete too.
  for (size_t i = 1; i < nodes_.size(); ++i) {
    uint64_t e = 0;
    std::vector<proto::Membership> mine;
    EXPECT_GT(nodes_[i]->ReadMembershipUntil(5, &e, &mine), 0) << "node " << nodes_[i]->id();
    EXPECT_EQ(e, epoch) << "node " << nodes_[i]->id();
  }
}

TEST_F(CoordinatorTest, BroadcastIsDoneWhenItsTargetsReportWithItsOpId) {
  StartCoordinator();
  AddNode(1);
  FakeNode& n2 = AddNode(2);
  FakeNode& n3 = AddNode(3);
  ASSERT_TRUE(PublishBig(1, "k").ok());
  proto::BroadcastReply reply;
  grpc::ClientContext ctx;
  std::future<grpc::Status> call = StartBroadcast("k", {2, 3}, &ctx, &reply);
  proto::CoordMessage m2, m3;
  ASSERT_TRUE(n2.NextInstruction(&m2));
  ASSERT_TRUE(n3.NextInstruction(&m3));
  ASSERT_TRUE(m2.has_pull());
  const uint64_t op = m2.pull().broadcast_id();
  EXPECT_NE(op, 0u);
  EXPECT_EQ(m3.pull().broadcast_id(), op);
  EXPECT_EQ(m2.pull().source().sender(), 1u);   // pre-attached
  // A report for another operation does not touch this one.
  ASSERT_TRUE(Report(3, "k", proto::ReportTransferRequest::ABORTED, op + 1000, "not this one").ok());
  ASSERT_TRUE(Report(2, "k", proto::ReportTransferRequest::COMPLETED, op).ok());
  ASSERT_TRUE(Report(3, "k", proto::ReportTransferRequest::ABORTED, op, "disk on fire").ok());
  ASSERT_TRUE(call.get().ok());
  ASSERT_EQ(reply.results_size(), 2);
  EXPECT_EQ(reply.broadcast_id(), op);
  EXPECT_TRUE(reply.results(0).ok());
  EXPECT_FALSE(reply.results(1).ok());
  EXPECT_EQ(reply.results(1).error(), "disk on fire");
}

// Reports may ride the node's session (ferryd sends inline pulls' outcomes that way); they
// count for the session's node, whatever node_id they carry.
TEST_F(CoordinatorTest, TransferReportsOnTheSessionCountForTheSessionsNode) {
  StartCoordinator();
  AddNode(1);
  FakeNode& n2 = AddNode(2);
  FakeNode& n3 = AddNode(3);
  ASSERT_TRUE(PublishBig(1, "k").ok());
  proto::BroadcastReply reply;
  grpc::ClientContext ctx;
  std::future<grpc::Status> call = StartBroadcast("k", {2, 3}, &ctx, &reply);
  proto::CoordMessage m2, m3;
  ASSERT_TRUE(n2.NextInstruction(&m2));
  ASSERT_TRUE(n3.NextInstruction(&m3));
  const uint64_t op = m2.pull().broadcast_id();
  auto report = [&](FakeNode& n, uint64_t claimed, proto::ReportTransferRequest::Outcome outcome, const char* detail) {
    proto::NodeMessage m;
    *m.mutable_transfer_report() = ReportOf(claimed, "k", outcome, op, detail);
    n.Send(m);
  };
  // n3 claims to be n2: its report is n3's, so n2 is still pending until it reports itself.
  report(n3, 2, proto::ReportTransferRequest::ABORTED, "n3 gave up");
  EXPECT_EQ(call.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  report(n2, 0, proto::ReportTransferRequest::COMPLETED, "");
  ASSERT_TRUE(call.get().ok());
  ASSERT_EQ(reply.results_size(), 2);
  for (const proto::BroadcastResult& r : reply.results()) {
    if (r.node_id() == 2) {
      EXPECT_TRUE(r.ok());
    } else {
      EXPECT_EQ(r.node_id(), 3u);
      EXPECT_FALSE(r.ok());
      EXPECT_EQ(r.error(), "n3 gave up");
    }
  }
}

TEST_F(CoordinatorTest, DeleteAnswersOnceEveryHolderConfirmedTheDrop) {
  StartCoordinator();
  FakeNode& n1 = AddNode(1);
  ASSERT_TRUE(PublishBig(1, "k").ok());
  proto::DeleteRequest req;
  *req.mutable_ref() = Ref("k");
  proto::DeleteReply reply;
  grpc::ClientContext ctx;
  std::future<grpc::Status> call = std::async(std::launch::async, [&] { return stub_->Delete(&ctx, req, &reply); });
  proto::CoordMessage m;
  ASSERT_TRUE(n1.NextInstruction(&m));
  ASSERT_TRUE(m.has_drop());
  EXPECT_EQ(m.drop().incarnation(), 5u);
  ASSERT_NE(m.drop().op_id(), 0u);
  proto::NodeMessage done;
  done.mutable_drop_done()->set_op_id(m.drop().op_id());
  n1.Send(done);
  ASSERT_TRUE(call.get().ok());
  EXPECT_EQ(reply.copies_dropped(), 1u);
}

TEST_F(CoordinatorTest, LocateWaitingForAKeyIsAnsweredByItsPublish) {
  StartCoordinator();
  AddNode(1);
  proto::LocateRequest req;
  *req.mutable_ref() = Ref("later");
  req.set_timeout_ms(600000);
  proto::LocateReply reply;
  grpc::ClientContext ctx;
  std::future<grpc::Status> call = std::async(std::launch::async, [&] { return stub_->Locate(&ctx, req, &reply); });
  ASSERT_TRUE(PublishBig(1, "later").ok());
  const grpc::Status s = call.get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.meta().size(), kBig);
}

TEST_F(CoordinatorTest, ZeroTimeoutsAnswerWhatIsTheCase) {
  StartCoordinator();
  AddNode(1);
  proto::LocateRequest req;
  *req.mutable_ref() = Ref("missing");
  proto::LocateReply reply;
  grpc::ClientContext ctx;
  EXPECT_EQ(stub_->Locate(&ctx, req, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  proto::AcquireSourceRequest acq;
  acq.set_node_id(1);
  *acq.mutable_ref() = Ref("missing");
  proto::AcquireSourceReply acq_reply;
  grpc::ClientContext ctx2;
  EXPECT_EQ(stub_->AcquireSource(&ctx2, acq, &acq_reply).error_code(), grpc::StatusCode::NOT_FOUND);
  acq.set_node_id(99);
  grpc::ClientContext ctx3;
  const grpc::Status s = stub_->AcquireSource(&ctx3, acq, &acq_reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("receiver node 99 is not registered"));
}

TEST_F(CoordinatorTest, AcquireSourceDeadlineIsAnsweredByTheTimer) {
  StartCoordinator();
  AddNode(1);
  proto::AcquireSourceRequest acq;
  acq.set_node_id(1);
  *acq.mutable_ref() = Ref("never");
  acq.set_timeout_ms(50);
  proto::AcquireSourceReply reply;
  grpc::ClientContext ctx;   // no client deadline: only the coordinator's timer ends the wait
  const grpc::Status s = stub_->AcquireSource(&ctx, acq, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(s.error_message(), HasSubstr("was not created within 50 ms"));
}

TEST_F(CoordinatorTest, ShutdownEndsWaitingCalls) {
  StartCoordinator();
  AddNode(1);
  proto::AcquireSourceRequest acq;
  acq.set_node_id(1);
  *acq.mutable_ref() = Ref("never");
  acq.set_timeout_ms(600000);
  proto::AcquireSourceReply reply;
  grpc::ClientContext ctx;
  std::promise<void> sent;
  std::future<grpc::Status> call = std::async(std::launch::async, [&] {
    sent.set_value();
    return stub_->AcquireSource(&ctx, acq, &reply);
  });
  sent.get_future().wait();
  // Whether the call was filed before Shutdown or arrives after it, it is answered CANCELLED.
  service_->Shutdown();
  const grpc::Status s = call.get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(CoordinatorTest, SilentNodeIsDeclaredDeadAtItsDeadline) {
  StartCoordinator(absl::Milliseconds(100));
  FakeNode& n1 = AddNode(1);   // sends no heartbeat
  const grpc::Status s = n1.End();   // the coordinator ends its session when its deadline passes
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
  const proto::ClusterStatusReply status = service_->coordinator().ClusterStatus();
  ASSERT_EQ(status.nodes_size(), 1);
  EXPECT_FALSE(status.nodes(0).alive());
  EXPECT_THAT(service_->MetricsText(), HasSubstr("ferry_coord_nodes_died_total 1"));
}

}  // namespace
}  // namespace ferry::control
