// PlacementService over a real in-process gRPC server, with nodes added through OnMembership
// (as the coordinator's listener does) and AddNode: waiting calls, cancellation, deadlines,
// lease expiry and node death explained to the holder, and request validation.
#include "control/placement/placement_service.h"

#include <grpcpp/grpcpp.h>

#include <future>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::control::placement {
namespace {

using ::testing::HasSubstr;

class PlacementServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = pb::Placement::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    proto::NodeInfo node;
    node.set_node_id(7);
    node.set_name("seven");
    (*node.mutable_resources())["tok"] = 1;
    (*node.mutable_resources())["half"] = 0.5;  // not a whole amount: skipped, not fatal
    (*node.mutable_labels())["rack"] = "r1";
    service_.OnMembership(node, /*alive=*/true);
  }
  void TearDown() override {
    service_.Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

  static pb::AcquireRequest Tok(const std::string& holder, uint32_t timeout_ms, uint32_t ttl_ms = 0) {
    pb::AcquireRequest req;
    req.set_holder(holder);
    req.set_timeout_ms(timeout_ms);
    req.set_lease_ttl_ms(ttl_ms);
    (*req.add_alternatives()->add_bundles()->mutable_amounts())["tok"] = 1;
    return req;
  }
  // An Acquire started without waiting for its answer (it lives until its answer came).
  struct PendingAcquire {
    grpc::ClientContext ctx;
    pb::AcquireRequest req;
    pb::AcquireReply reply;
    std::promise<grpc::Status> done;
  };
  // Starts `holder`'s Acquire of the token (60 s timeout) and gives it time to reach the queue.
  std::unique_ptr<PendingAcquire> StartWaiting(const std::string& holder, absl::Duration settle) {
    auto p = std::make_unique<PendingAcquire>();
    p->req = Tok(holder, 60000);
    stub_->async()->Acquire(&p->ctx, &p->req, &p->reply,
                            [done = &p->done](grpc::Status s) { done->set_value(s); });
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(settle));
    return p;
  }
  grpc::Status Acquire(const pb::AcquireRequest& req, pb::AcquireReply* reply) {
    grpc::ClientContext ctx;
    return stub_->Acquire(&ctx, req, reply);
  }
  grpc::Status Renew(uint64_t lease, const std::string& holder) {
    grpc::ClientContext ctx;
    pb::RenewRequest req;
    req.set_lease_id(lease);
    req.set_holder(holder);
    pb::RenewReply reply;
    return stub_->Renew(&ctx, req, &reply);
  }

  PlacementService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::Placement::Stub> stub_;
};

TEST_F(PlacementServiceTest, MembershipAddsTheNodeWithItsUsableResources) {
  grpc::ClientContext ctx;
  pb::ClusterResourcesReply reply;
  ASSERT_TRUE(stub_->ClusterResources(&ctx, {}, &reply).ok());
  ASSERT_EQ(reply.nodes_size(), 1);
  EXPECT_EQ(reply.nodes(0).name(), "seven");
  EXPECT_EQ(reply.nodes(0).labels().at("rack"), "r1");
  EXPECT_TRUE(reply.nodes(0).resources().contains("tok"));
  EXPECT_FALSE(reply.nodes(0).resources().contains("half"));
}

TEST_F(PlacementServiceTest, CancelledWaiterIsWithdrawn) {
  pb::AcquireReply held;
  ASSERT_TRUE(Acquire(Tok("a", 1000), &held).ok());
  // b waits, then its client cancels; the request must leave the queue (not be granted later).
  std::unique_ptr<PendingAcquire> b = StartWaiting("b", absl::Milliseconds(200));
  b->ctx.TryCancel();
  EXPECT_EQ(b->done.get_future().get().error_code(), grpc::StatusCode::CANCELLED);
  grpc::ClientContext rctx;
  pb::ReleaseRequest rel;
  rel.set_lease_id(held.lease().lease_id());
  rel.set_holder("a");
  pb::ReleaseReply rreply;
  ASSERT_TRUE(stub_->Release(&rctx, rel, &rreply).ok());
  pb::AcquireReply again;
  ASSERT_TRUE(Acquire(Tok("c", 1000), &again).ok()) << "the cancelled waiter kept the token";
  EXPECT_EQ(again.lease().holder(), "c");
}

TEST_F(PlacementServiceTest, DeadlineEndsTheWait) {
  pb::AcquireReply held, late;
  ASSERT_TRUE(Acquire(Tok("a", 1000), &held).ok());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Acquire(Tok("b", 200), &late).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
}

TEST_F(PlacementServiceTest, ExpiredLeaseIsExplainedToItsHolder) {
  pb::AcquireReply held;
  ASSERT_TRUE(Acquire(Tok("a", 1000, /*ttl_ms=*/100), &held).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  grpc::Status s = Renew(held.lease().lease_id(), "a");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
}

TEST_F(PlacementServiceTest, DeadNodeLeaseIsExplainedAndAWaiterFails) {
  pb::AcquireReply held;
  ASSERT_TRUE(Acquire(Tok("a", 1000), &held).ok());
  std::unique_ptr<PendingAcquire> b = StartWaiting("b", absl::Milliseconds(100));
  proto::NodeInfo dead;
  dead.set_node_id(7);
  service_.OnMembership(dead, /*alive=*/false);
  // The only node with "tok" is gone: b can never be granted.
  EXPECT_EQ(b->done.get_future().get().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status s = Renew(held.lease().lease_id(), "a");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("seven (7) died"));
}

TEST_F(PlacementServiceTest, InvalidRequestsNameTheField) {
  pb::AcquireReply reply;
  pb::AcquireRequest bad = Tok("a", 1000);
  (*bad.mutable_alternatives(0)->mutable_bundles(0)->mutable_amounts())["tok"] = 1.5;
  grpc::Status s = Acquire(bad, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("'tok'"));
  bad = Tok("", 1000);
  EXPECT_EQ(Acquire(bad, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad = Tok("a", 1000);
  bad.mutable_alternatives(0)->set_constraint(static_cast<pb::Constraint>(42));
  s = Acquire(bad, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("constraint"));
  bad = Tok("a", 1000, /*ttl_ms=*/100 * 3600 * 1000);
  EXPECT_EQ(Acquire(bad, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext ctx;
  pb::SetResourceRequest set;
  set.set_name("x");
  set.set_capacity(1);
  pb::SetResourceReply sreply;
  s = stub_->SetResource(&ctx, set, &sreply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("selector"));
  EXPECT_EQ(Renew(0, "a").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(PlacementServiceTest, ShutdownAnswersWaitersUnavailable) {
  pb::AcquireReply held;
  ASSERT_TRUE(Acquire(Tok("a", 1000), &held).ok());
  std::unique_ptr<PendingAcquire> b = StartWaiting("b", absl::Milliseconds(100));
  service_.Shutdown();
  EXPECT_EQ(b->done.get_future().get().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace ferry::control::placement
