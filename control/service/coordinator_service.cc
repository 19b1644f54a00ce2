#include "control/service/coordinator_service.h"

#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "core/batch.h"
#include "core/names.h"
#include "control/collectives/reduce.h"
#include "proto/status_bridge.h"

namespace ferry::control {
namespace {

absl::Status CheckRef(const proto::ObjectRef& ref) { return ValidateObjectName(ref.ns(), ref.key()); }

absl::Status CheckDistinctNodes(const google::protobuf::RepeatedField<uint64_t>& ids) {
  absl::flat_hash_set<uint64_t> seen;
  for (uint64_t id : ids) {
    if (id == 0) return absl::InvalidArgumentError("target node id 0 names no node");
    if (!seen.insert(id).second) return absl::InvalidArgumentError(absl::StrCat("target node ", id, " is named twice"));
  }
  return absl::OkStatus();
}

// The one batch-name check (core/batch.h) over a list of refs.
absl::Status CheckBatchRefs(int count, absl::FunctionRef<const proto::ObjectRef&(int)> ref_at) {
  return ValidateBatchNames(static_cast<size_t>(count), [&](size_t i) {
    const proto::ObjectRef& ref = ref_at(static_cast<int>(i));
    return std::pair<absl::string_view, absl::string_view>(ref.ns(), ref.key());
  });
}

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

grpc::ServerUnaryReactor* CoordinatorService::BroadcastBatch(grpc::CallbackServerContext* ctx,
                                                             const proto::BroadcastBatchRequest* req,
                                                             proto::BroadcastBatchReply* reply) {
  absl::Status s = CheckBatchRefs(req->refs_size(), [req](int i) -> const proto::ObjectRef& { return req->refs(i); });
  if (s.ok()) s = CheckDistinctNodes(req->node_ids());
  if (!s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_, [&](Waiter::Reply answer) {
    return coordinator_.BroadcastBatch(req, reply, std::move(answer));
  });
}

grpc::ServerUnaryReactor* CoordinatorService::PublishBatch(grpc::CallbackServerContext* ctx,
                                                           const proto::PublishBatchRequest* req,
                                                           proto::PublishBatchReply* reply) {
  absl::Status s =
      CheckBatchRefs(req->entries_size(), [req](int i) -> const proto::ObjectRef& { return req->entries(i).ref(); });
  if (!s.ok()) return Answer(ctx, s);
  return Answer(ctx, coordinator_.PublishBatch(*req, reply));
}

grpc::ServerUnaryReactor* CoordinatorService::DeleteBatch(grpc::CallbackServerContext* ctx,
                                                          const proto::DeleteBatchRequest* req,
                                                          proto::DeleteBatchReply* reply) {
  absl::Status s = CheckBatchRefs(req->refs_size(), [req](int i) -> const proto::ObjectRef& { return req->refs(i); });
  if (!s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_, [&](Waiter::Reply answer) {
    return coordinator_.DeleteBatch(req, reply, std::move(answer));
  });
}

grpc::ServerUnaryReactor* CoordinatorService::Exists(grpc::CallbackServerContext* ctx, const proto::ExistsRequest* req,
                                                     proto::ExistsReply* reply) {
  absl::Status s = CheckBatchRefs(req->refs_size(), [req](int i) -> const proto::ObjectRef& { return req->refs(i); });
  if (!s.ok()) return Answer(ctx, s);
  *reply = coordinator_.Exists(*req);
  return Answer(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::Reduce(grpc::CallbackServerContext* ctx, const proto::ReduceRequest* req,
                                                     proto::ReduceReply* reply) {
  if (absl::Status s = ValidateReduceRequest(*req); !s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_, [&](Waiter::Reply answer) {
    return coordinator_.Reduce(req, reply, /*all=*/false, std::move(answer));
  });
}

grpc::ServerUnaryReactor* CoordinatorService::AllReduce(grpc::CallbackServerContext* ctx,
                                                        const proto::ReduceRequest* req, proto::ReduceReply* reply) {
  if (absl::Status s = ValidateReduceRequest(*req); !s.ok()) return Answer(ctx, s);
  return WaitingCall::Run(&coordinator_, [&](Waiter::Reply answer) {
    return coordinator_.Reduce(req, reply, /*all=*/true, std::move(answer));
  });
}

grpc::ServerUnaryReactor* CoordinatorService::Group(grpc::CallbackServerContext* ctx, const proto::GroupRequest* req,
                                                    proto::GroupReply* reply) {
  if (!req->has_collective()) return Answer(ctx, coordinator_.GroupAdmin(*req, reply));
  return WaitingCall::Run(&coordinator_, [&](Waiter::Reply answer) {
    return coordinator_.RunGroupCollective(&req->collective(), reply->mutable_collective(), std::move(answer));
  });
}

}  // namespace ferry::control
