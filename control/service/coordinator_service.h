// ferry-coord's gRPC service: thin adaptors only. Each RPC validates its request (names, refs),
// calls the Coordinator (control/coordinator.h) and converts the answer; all state and every
// decision live there.
//
// Every RPC runs on gRPC's callback API: node sessions are NodeSession reactors, and the unary
// RPCs are ServerUnaryReactors. A waiting call (AcquireSource, Locate, Broadcast, Delete) holds
// no thread while it waits: its reactor owns the call's Waiter, which the Coordinator completes
// when the change it waits for happens or at its deadline; OnCancel (the client went away)
// completes it at once. Reactions run on gRPC's callback threads and take the Coordinator's lock
// only briefly.
#pragma once

#include <string>

#include <grpcpp/grpcpp.h>

#include "control/coordinator.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry::control {

class CoordinatorService final : public proto::Coordinator::CallbackService {
 public:
  explicit CoordinatorService(CoordinatorOptions options) : coordinator_(std::move(options)) {}
  ~CoordinatorService() override { Shutdown(); }

  grpc::ServerBidiReactor<proto::NodeMessage, proto::CoordMessage>* Session(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx, const proto::PublishRequest* req,
                                    proto::PublishReply* reply) override;
  grpc::ServerUnaryReactor* Unpublish(grpc::CallbackServerContext* ctx, const proto::UnpublishRequest* req,
                                      proto::UnpublishReply* reply) override;
  grpc::ServerUnaryReactor* AcquireSource(grpc::CallbackServerContext* ctx, const proto::AcquireSourceRequest* req,
                                          proto::AcquireSourceReply* reply) override;
  grpc::ServerUnaryReactor* ReportTransfer(grpc::CallbackServerContext* ctx, const proto::ReportTransferRequest* req,
                                           proto::ReportTransferReply* reply) override;
  grpc::ServerUnaryReactor* Locate(grpc::CallbackServerContext* ctx, const proto::LocateRequest* req,
                                   proto::LocateReply* reply) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx, const proto::DeleteRequest* req,
                                   proto::DeleteReply* reply) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx, const proto::ListRequest* req,
                                 proto::ListReply* reply) override;
  grpc::ServerUnaryReactor* ClusterStatus(grpc::CallbackServerContext* ctx, const proto::ClusterStatusRequest* req,
                                          proto::ClusterStatusReply* reply) override;
  grpc::ServerUnaryReactor* Broadcast(grpc::CallbackServerContext* ctx, const proto::BroadcastRequest* req,
                                      proto::BroadcastReply* reply) override;
  grpc::ServerUnaryReactor* BroadcastBatch(grpc::CallbackServerContext* ctx, const proto::BroadcastBatchRequest* req,
                                           proto::BroadcastBatchReply* reply) override;
  grpc::ServerUnaryReactor* PublishBatch(grpc::CallbackServerContext* ctx, const proto::PublishBatchRequest* req,
                                         proto::PublishBatchReply* reply) override;
  grpc::ServerUnaryReactor* DeleteBatch(grpc::CallbackServerContext* ctx, const proto::DeleteBatchRequest* req,
                                        proto::DeleteBatchReply* reply) override;
  grpc::ServerUnaryReactor* Exists(grpc::CallbackServerContext* ctx, const proto::ExistsRequest* req,
                                   proto::ExistsReply* reply) override;
  grpc::ServerUnaryReactor* Reduce(grpc::CallbackServerContext* ctx, const proto::ReduceRequest* req,
                                   proto::ReduceReply* reply) override;
  grpc::ServerUnaryReactor* AllReduce(grpc::CallbackServerContext* ctx, const proto::ReduceRequest* req,
                                      proto::ReduceReply* reply) override;
  grpc::ServerUnaryReactor* Group(grpc::CallbackServerContext* ctx, const proto::GroupRequest* req,
                                  proto::GroupReply* reply) override;

  // Ends waiting calls and node sessions (see Coordinator::Shutdown). Idempotent.
  void Shutdown() { coordinator_.Shutdown(); }
  // Prometheus text exposition of the coordinator's counters.
  std::string MetricsText() { return coordinator_.MetricsText(); }
  Coordinator& coordinator() { return coordinator_; }

 private:
  Coordinator coordinator_;
};

}  // namespace ferry::control
