// The coordinator writes to node sessions outside its lock, so a node can receive a
// membership update caused by another node's registration before its own Welcome and its
// own (older) first update. A real gRPC coordinator stand-in scripts exactly that order and
// checks that ferryd's Node keeps the peer the newer update added.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "dataplane/sidecar/node.h"
#include "shm/arena.h"
#include "dataplane/transport/inproc_transport.h"
#include "gtest/gtest.h"
#include "tests/unit/sidecar/inproc_node_info.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry::dataplane {
namespace {

constexpr uint64_t kSelf = 101, kPeer = 202;

// Session: membership epoch 2 {self, peer}, then Welcome, then membership epoch 1 {self},
// then an inline PullInstruction; the node's report of that pull proves it has
// handled everything before it.
class ScriptedCoordinator final : public proto::Coordinator::Service {
 public:
  grpc::Status Session(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<proto::CoordMessage, proto::NodeMessage>* stream) override {
    proto::NodeMessage hello;
    if (!stream->Read(&hello)) return grpc::Status::CANCELLED;
    proto::CoordMessage m2;
    m2.mutable_membership()->set_epoch(2);
    *m2.mutable_membership()->add_nodes() = testing::InprocNodeInfo(kSelf);
    *m2.mutable_membership()->add_nodes() = testing::InprocNodeInfo(kPeer);
    proto::CoordMessage welcome;
    welcome.mutable_welcome()->set_node_id(kSelf);
    welcome.mutable_welcome()->set_heartbeat_interval_ms(1000);
    welcome.mutable_welcome()->set_liveness_timeout_ms(10000);
    proto::CoordMessage m1;
    m1.mutable_membership()->set_epoch(1);
    *m1.mutable_membership()->add_nodes() = testing::InprocNodeInfo(kSelf);
    proto::CoordMessage pull;
    proto::PullInstruction* p = pull.mutable_pull();
    p->mutable_ref()->set_ns("default");
    p->mutable_ref()->set_key("marker");
    p->set_is_inline(true);
    p->mutable_meta()->set_size(1);
    p->set_inline_data("x");
    for (const proto::CoordMessage* m : {&m2, &welcome, &m1, &pull}) {
      if (!stream->Write(*m)) return grpc::Status::CANCELLED;
    }
    proto::NodeMessage in;
    while (!ctx->IsCancelled() && stream->Read(&in)) {
      if (in.has_transfer_report()) Reported(in.transfer_report());
    }
    return grpc::Status::OK;
  }

  // An inline pull's report comes on the session; the RPC is served too.
  grpc::Status ReportTransfer(grpc::ServerContext*, const proto::ReportTransferRequest* req,
                              proto::ReportTransferReply*) override {
    Reported(*req);
    return grpc::Status::OK;
  }

  void Reported(const proto::ReportTransferRequest& req) {
    if (req.ref().key() != "marker") return;
    std::lock_guard<std::mutex> lock(mu_);
    reported_ = true;
    cv_.notify_all();
  }

  bool WaitReported() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [this] { return reported_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool reported_ = false;
};

TEST(MembershipOrder, NewerUpdateBeforeWelcomeIsKept) {
  ScriptedCoordinator coord;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&coord);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto fabric = std::make_shared<InprocFabric>();
  absl::StatusOr<std::unique_ptr<InprocTransport>> peer = InprocTransport::Create(fabric, kPeer);
  ASSERT_TRUE(peer.ok()) << peer.status();
  absl::StatusOr<std::unique_ptr<InprocTransport>> self = InprocTransport::Create(fabric, kSelf);
  ASSERT_TRUE(self.ok()) << self.status();
  absl::StatusOr<std::unique_ptr<shm::Arena>> arena = shm::Arena::Create("membership-order-test", 1 << 20, true);
  ASSERT_TRUE(arena.ok()) << arena.status();
  NodeOptions options;
  options.name = "n101";
  options.node_id = kSelf;
  options.coordinator = absl::StrCat("127.0.0.1:", port);
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Create(options, std::move(*arena), std::move(*self));
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();
  ASSERT_TRUE(coord.WaitReported()) << "the node never reported the marker pull";
  EXPECT_TRUE((*node)->transport().HasPeer(kPeer))
      << "the epoch-1 update that arrived after Welcome removed the peer epoch 2 had added";
  (*node)->Shutdown();
  server->Shutdown();
}

}  // namespace
}  // namespace ferry::dataplane
