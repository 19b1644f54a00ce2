#include "control/service/coordinator_service.h"

#include <memory>

#include "core/names.h"
#include "proto/status_bridge.h"

namespace ferry::control {
namespace {

absl::Status CheckRef(const proto::ObjectRef& ref) { return ValidateObjectName(ref.ns(), ref.key()); }

// Answers a call that does not wait.
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

// A waiting call's reactor: owns the call's Waiter until gRPC is done with the call. The
// Waiter's reply callback finishes the call; the client's cancellation ends the wait.
class WaitingCall final : public grpc::ServerUnaryReactor {
 public:
  explicit WaitingCall(Coordinator* coordinator) : coordinator_(coordinator) {}

  // `make` builds the waiter from the answer callback; the call starts waiting here (and may be
  // answered before this returns).
  template <typename Make>
  static grpc::ServerUnaryReactor* Run(Coordinator* coordinator, Make make) {
    auto* call = new WaitingCall(coordinator);
    call->waiter_ = make([call](absl::Status status) { call->Finish(ToGrpc(status)); });
    // A copy: answering inside Start may run OnDone, which deletes `call` and its waiter_.
    const std::shared_ptr<Waiter> waiter = call->waiter_;
    coordinator->Start(waiter);
    return call;
  }

  void OnCancel() override { coordinator_->Cancel(waiter_); }
  void OnDone() override { delete this; }

 private:
  Coordinator* const coordinator_;
  std::shared_ptr<Waiter> waiter_;   // set before the call can be cancelled or answered
};

}  // namespace

grpc::ServerBidiReactor<proto::NodeMessage, proto::CoordMessage>* CoordinatorService::Session(
    grpc::CallbackServerContext* ctx) {
  return NodeSession::Start(ctx, &coordinator_, coordinator_.options().session_queue);
}

grpc::ServerUnaryReactor* CoordinatorService::Publish(grpc::CallbackServerContext* ctx, const proto::PublishRequest* req,
                                                      proto::PublishReply*) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return Answer(ctx, coordinator_.Publish(*req));
}

grpc::ServerUnaryReactor* CoordinatorService::Unpublish(grpc::CallbackServerContext* ctx,
                                                        const proto::UnpublishRequest* req, proto::UnpublishReply*) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return Answer(ctx, coordinator_.Unpublish(*req));
}

grpc::ServerUnaryReactor* CoordinatorService::ReportTransfer(grpc::CallbackServerContext* ctx,
                                                             const proto::ReportTransferRequest* req,
                                                             proto::ReportTransferReply*) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return Answer(ctx, coordinator_.ReportTransfer(*req));
}

grpc::ServerUnaryReactor* CoordinatorService::List(grpc::CallbackServerContext* ctx, const proto::ListRequest* req,
                                                   proto::ListReply* reply) {
  if (absl::Status s = ValidateNamespace(req->ns()); !s.ok()) return Answer(ctx, s);
  *reply = coordinator_.List(*req);
  return Answer(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::ClusterStatus(grpc::CallbackServerContext* ctx,
                                                            const proto::ClusterStatusRequest*,
                                                            proto::ClusterStatusReply* reply) {
  *reply = coordinator_.ClusterStatus();
  return Answer(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::AcquireSource(grpc::CallbackServerContext* ctx,
                                                            const proto::AcquireSourceRequest* req,
                                                            proto::AcquireSourceReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_, [&](Waiter::Reply answer) {
    return coordinator_.AcquireSource(req, reply, std::move(answer));
  });
}

grpc::ServerUnaryReactor* CoordinatorService::Locate(grpc::CallbackServerContext* ctx, const proto::LocateRequest* req,
                                                     proto::LocateReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_,
                          [&](Waiter::Reply answer) { return coordinator_.Locate(req, reply, std::move(answer)); });
}

grpc::ServerUnaryReactor* CoordinatorService::Delete(grpc::CallbackServerContext* ctx, const proto::DeleteRequest* req,
                                                     proto::DeleteReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_,
                          [&](Waiter::Reply answer) { return coordinator_.Delete(req, reply, std::move(answer)); });
}

grpc::ServerUnaryReactor* CoordinatorService::Broadcast(grpc::CallbackServerContext* ctx,
                                                        const proto::BroadcastRequest* req, proto::BroadcastReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_,
                          [&](Waiter::Reply answer) { return coordinator_.Broadcast(req, reply, std::move(answer)); });
}

}  // namespace ferry::control
