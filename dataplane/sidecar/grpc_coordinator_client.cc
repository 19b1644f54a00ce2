#include "dataplane/sidecar/grpc_coordinator_client.h"

#include <algorithm>
#include <utility>

#include "common/grpc_options.h"
#include "proto/status_bridge.h"

namespace ferry::dataplane {
namespace {

constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

class GrpcStream final : public CoordinatorStream {
 public:
  explicit GrpcStream(proto::Coordinator::Stub* stub) : stream_(stub->Session(&ctx_)) {}
  bool Write(const proto::NodeMessage& msg) override { return stream_->Write(msg); }
  bool Read(proto::CoordMessage* msg) override { return stream_->Read(msg); }
  absl::Status Finish() override { return FromGrpc(stream_->Finish()); }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;   // before stream_: the stream uses it
  std::unique_ptr<grpc::ClientReaderWriter<proto::NodeMessage, proto::CoordMessage>> stream_;
};

}  // namespace

class GrpcCoordinatorClient::WaitingCall {
 public:
  WaitingCall(GrpcCoordinatorClient* client, absl::Duration timeout) : client_(client), ctx_(Context(timeout)) {
    absl::MutexLock lock(&client_->mu_);
    registered_ = !client_->stopping_;
    if (registered_) client_->waiting_.insert(ctx_.get());
  }
  ~WaitingCall() {
    if (!registered_) return;
    absl::MutexLock lock(&client_->mu_);
    client_->waiting_.erase(ctx_.get());
  }
  // False after Shutdown: do not make the call.
  bool registered() const { return registered_; }
  grpc::ClientContext* ctx() { return ctx_.get(); }

 private:
  GrpcCoordinatorClient* client_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  bool registered_ = false;
};

GrpcCoordinatorClient::GrpcCoordinatorClient(std::string target) : target_(std::move(target)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  ApplyClientKeepalive(kKeepalive, args);  // the policy ferry-coord's server permits
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
  stub_ = proto::Coordinator::NewStub(channel_);
}

GrpcCoordinatorClient::~GrpcCoordinatorClient() { Shutdown(); }

std::unique_ptr<CoordinatorStream> GrpcCoordinatorClient::OpenSession() {
  return std::make_unique<GrpcStream>(stub_.get());
}

absl::Status GrpcCoordinatorClient::Locate(const proto::LocateRequest& req, proto::LocateReply* reply) {
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->Locate(ctx.get(), req, reply));
}

absl::Status GrpcCoordinatorClient::Publish(const proto::PublishRequest& req) {
  proto::PublishReply reply;
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->Publish(ctx.get(), req, &reply));
}

absl::Status GrpcCoordinatorClient::Unpublish(const proto::UnpublishRequest& req) {
  proto::UnpublishReply reply;
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->Unpublish(ctx.get(), req, &reply));
}

absl::Status GrpcCoordinatorClient::AcquireSource(const proto::AcquireSourceRequest& req,
                                                  proto::AcquireSourceReply* reply) {
  WaitingCall call(this, absl::Milliseconds(req.timeout_ms()) + absl::Seconds(5));
  if (!call.registered()) return absl::CancelledError("ferryd is shutting down");
  return FromGrpc(stub_->AcquireSource(call.ctx(), req, reply));
}

absl::Status GrpcCoordinatorClient::ReportTransfer(const proto::ReportTransferRequest& req) {
  proto::ReportTransferReply reply;
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->ReportTransfer(ctx.get(), req, &reply));
}

absl::Status GrpcCoordinatorClient::Delete(const proto::DeleteRequest& req) {
  proto::DeleteReply reply;
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->Delete(ctx.get(), req, &reply));
}

absl::Status GrpcCoordinatorClient::PublishBatch(const proto::PublishBatchRequest& req,
                                                 proto::PublishBatchReply* reply) {
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->PublishBatch(ctx.get(), req, reply));
}

absl::Status GrpcCoordinatorClient::DeleteBatch(const proto::DeleteBatchRequest& req, proto::DeleteBatchReply* reply) {
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->DeleteBatch(ctx.get(), req, reply));
}

absl::Status GrpcCoordinatorClient::Exists(const proto::ExistsRequest& req, proto::ExistsReply* reply) {
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->Exists(ctx.get(), req, reply));
}

absl::Status GrpcCoordinatorClient::List(const proto::ListRequest& req, proto::ListReply* reply) {
  auto ctx = Context(kRpcTimeout);
  return FromGrpc(stub_->List(ctx.get(), req, reply));
}

absl::Status GrpcCoordinatorClient::ClusterStatus(proto::ClusterStatusReply* reply) {
  proto::ClusterStatusRequest req;
  auto ctx = Context(absl::Seconds(3));
  return FromGrpc(stub_->ClusterStatus(ctx.get(), req, reply));
}

absl::Status GrpcCoordinatorClient::Broadcast(const proto::BroadcastRequest& req, proto::BroadcastReply* reply) {
  WaitingCall call(this, absl::Milliseconds(req.timeout_ms()) + absl::Seconds(10));
  if (!call.registered()) return absl::CancelledError("ferryd is shutting down");
  return FromGrpc(stub_->Broadcast(call.ctx(), req, reply));
}

absl::Status GrpcCoordinatorClient::BroadcastBatch(const proto::BroadcastBatchRequest& req,
                                                   proto::BroadcastBatchReply* reply) {
  WaitingCall call(this, absl::Milliseconds(req.timeout_ms()) + absl::Seconds(10));
  if (!call.registered()) return absl::CancelledError("ferryd is shutting down");
  return FromGrpc(stub_->BroadcastBatch(call.ctx(), req, reply));
}

absl::Status GrpcCoordinatorClient::Reduce(const proto::ReduceRequest& req, bool all, proto::ReduceReply* reply) {
  WaitingCall call(this, absl::Milliseconds(req.timeout_ms()) + absl::Seconds(10));
  if (!call.registered()) return absl::CancelledError("ferryd is shutting down");
  return FromGrpc(all ? stub_->AllReduce(call.ctx(), req, reply) : stub_->Reduce(call.ctx(), req, reply));
}

absl::Status GrpcCoordinatorClient::Group(const proto::GroupRequest& req, proto::GroupReply* reply) {
  const uint32_t timeout_ms = !req.has_collective() ? 0 : req.collective().timeout_ms() == 0 ? 60000 : req.collective().timeout_ms();
  WaitingCall call(this, absl::Milliseconds(timeout_ms) + absl::Seconds(10));
  if (!call.registered()) return absl::CancelledError("ferryd is shutting down");
  return FromGrpc(stub_->Group(call.ctx(), req, reply));
}

void GrpcCoordinatorClient::Shutdown() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (grpc::ClientContext* ctx : waiting_) ctx->TryCancel();
}

}  // namespace ferry::dataplane
