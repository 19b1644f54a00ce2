// CoordinatorClient over gRPC: one channel to ferry-coord (keepalive as the coordinator's
// server permits, reconnect backoff 100 ms .. 1 s) and its Coordinator stub.
//
// Deadlines: 10 s for the short calls, 3 s for ClusterStatus, the request's timeout + 5 s for
// AcquireSource and + 10 s for Broadcast. Threading: as CoordinatorClient.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/sidecar/coordinator_client.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry::dataplane {

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  // `target` is host:port. Does not connect yet (the channel connects on first use).
  explicit GrpcCoordinatorClient(std::string target);
  ~GrpcCoordinatorClient() override;

  const std::string& target() const override { return target_; }
  std::unique_ptr<CoordinatorStream> OpenSession() override;
  absl::Status Locate(const proto::LocateRequest& req, proto::LocateReply* reply) override;
  absl::Status Publish(const proto::PublishRequest& req) override;
  absl::Status Unpublish(const proto::UnpublishRequest& req) override;
  absl::Status AcquireSource(const proto::AcquireSourceRequest& req, proto::AcquireSourceReply* reply) override;
  absl::Status ReportTransfer(const proto::ReportTransferRequest& req) override;
  absl::Status Delete(const proto::DeleteRequest& req) override;
  absl::Status PublishBatch(const proto::PublishBatchRequest& req, proto::PublishBatchReply* reply) override;
  absl::Status DeleteBatch(const proto::DeleteBatchRequest& req, proto::DeleteBatchReply* reply) override;
  absl::Status Exists(const proto::ExistsRequest& req, proto::ExistsReply* reply) override;
  absl::Status List(const proto::ListRequest& req, proto::ListReply* reply) override;
  absl::Status ClusterStatus(proto::ClusterStatusReply* reply) override;
  absl::Status Broadcast(const proto::BroadcastRequest& req, proto::BroadcastReply* reply) override;
  absl::Status BroadcastBatch(const proto::BroadcastBatchRequest& req, proto::BroadcastBatchReply* reply) override;
  absl::Status Reduce(const proto::ReduceRequest& req, bool all, proto::ReduceReply* reply) override;
  absl::Status Group(const proto::GroupRequest& req, proto::GroupReply* reply) override;
  void Shutdown() override;

 private:
  // Registers a context that Shutdown cancels; CANCELLED once shut down.
  class WaitingCall;

  const std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<proto::Coordinator::Stub> stub_;
  absl::Mutex mu_;
  // Calls that may wait long, in progress: each is cancelled by Shutdown. Invariant: empty
  // once stopping_ is set and the calls in progress have returned.
  std::set<grpc::ClientContext*> waiting_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::dataplane
