#include "sdk/client_impl.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "common/status_macros.h"
#include "shm/arena_channel.h"
#include "proto/status_bridge.h"
#include "sdk/convert.h"

namespace ferry {
namespace {

// How long Connect waits for ferryd's arena hello and for its gRPC service.
constexpr absl::Duration kConnectTimeout = absl::Seconds(5);
// Listings of many objects can exceed gRPC's 4 MiB default.
constexpr int kMaxReplyBytes = 256 << 20;

std::string Describe(const ObjectName& name) { return PrintableName(name.ns, name.key); }

absl::Status OutcomeStatus(const proto::BatchOutcome& o) {
  return absl::Status(static_cast<absl::StatusCode>(o.code()), o.error());
}

// "batch of N objects in NS", for the RPC errors of a batch call.
std::string DescribeBatch(const std::vector<ObjectName>& names) {
  return absl::StrCat("(batch of ", names.size(), " objects in ", names.empty() ? "" : names[0].ns, ")");
}

// A request naming the batch's objects in `refs`, for `session`.
template <typename Request>
Request RefsRequest(uint64_t session, const std::vector<ObjectName>& names) {
  Request req;
  req.set_session(session);
  for (const ObjectName& name : names) sdk::NameToProto(name, req.add_refs());
  return req;
}

std::vector<absl::Status> Statuses(const proto::BatchOutcomesReply& reply) {
  std::vector<absl::Status> out;
  out.reserve(reply.outcomes_size());
  for (const proto::BatchOutcome& o : reply.outcomes()) out.push_back(OutcomeStatus(o));
  return out;
}

// A reply must hold one outcome per entry.
absl::Status CheckOutcomes(absl::string_view op, const proto::BatchOutcomesReply& reply, size_t entries) {
  if (static_cast<size_t>(reply.outcomes_size()) == entries) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(op, ": ferryd answered ", reply.outcomes_size(), " outcomes for ",
                                          entries, " entries"));
}

// The request and reply messages of a Sidecar RPC, named by the RPC itself (the message names
// of sidecar.proto and coordinator.proto share one package, so they may get prefixes).
template <typename Method>
struct RpcTypes;
template <typename Req, typename Rep>
struct RpcTypes<grpc::Status (proto::Sidecar::Stub::*)(grpc::ClientContext*, const Req&, Rep*)> {
  using Request = Req;
  using Reply = Rep;
};
template <auto kMethod>
using RequestOf = typename RpcTypes<decltype(kMethod)>::Request;
template <auto kMethod>
using ReplyOf = typename RpcTypes<decltype(kMethod)>::Reply;

}  // namespace

absl::StatusOr<std::shared_ptr<ClientImpl>> ClientImpl::Connect(const std::string& socket_path,
                                                                const ConnectOptions& options) {
  FERRY_RETURN_IF_ERROR(ValidateNamespace(options.ns));
  if (options.rpc_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("rpc_timeout must be positive, got ",
                                                   absl::FormatDuration(options.rpc_timeout)));
  }
  const absl::Duration wait = std::min(kConnectTimeout, options.rpc_timeout);
  FERRY_ASSIGN_OR_RETURN(
      shm::ReceivedArena received,
      shm::ReceiveArena(socket_path, static_cast<int>(absl::ToInt64Milliseconds(wait))));
  absl::StatusOr<std::unique_ptr<shm::Arena>> arena =
      shm::Arena::Map(received.fd, received.hello.arena_size);  // owns the fd now
  if (!arena.ok()) {
    close(received.conn);
    return Annotate(arena.status(),
                    absl::StrCat("mapping the arena of ferryd at '", socket_path, "'"));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReplyBytes);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      absl::StrCat("unix:", socket_path), grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + wait))) {
    close(received.conn);
    return absl::UnavailableError(absl::StrCat(
        "ferryd at '", socket_path, "' sent its arena but its RPC service did not answer within ",
        absl::FormatDuration(wait)));
  }
  return std::shared_ptr<ClientImpl>(new ClientImpl(
      socket_path, options, received.hello.session, received.hello.node_id, received.conn,
      std::shared_ptr<shm::Arena>(std::move(*arena)), std::move(channel)));
}

ClientImpl::ClientImpl(std::string socket_path, ConnectOptions options, uint64_t session,
                       uint64_t node_id, int conn, std::shared_ptr<shm::Arena> arena,
                       std::shared_ptr<grpc::Channel> channel)
    : socket_path_(std::move(socket_path)),
      options_(std::move(options)),
      session_(session),
      node_id_(node_id),
      conn_(conn),
      arena_(std::move(arena)),
      channel_(std::move(channel)),
      stub_(proto::Sidecar::NewStub(channel_)) {}

ClientImpl::~ClientImpl() {
  // Normally already done by ~Client; handles keep this object alive, so none is waiting.
  gets_->CloseAndDrain();
  // Closing the arena channel ends the session: ferryd reclaims what we did not seal and
  // drops our pins. The mapping itself goes with arena_.
  close(conn_);
}

template <typename Request, typename Reply>
absl::Status ClientImpl::Call(grpc::Status (proto::Sidecar::Stub::*method)(grpc::ClientContext*,
                                                                           const Request&, Reply*),
                              const Request& request, Reply* reply, absl::Duration extra,
                              absl::string_view op, absl::string_view what) const {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + extra + options_.rpc_timeout));
  grpc::Status status = (stub_.get()->*method)(&ctx, request, reply);
  return status.ok() ? absl::OkStatus() : RpcError(ctx, status, op, what);
}

absl::Status ClientImpl::RpcError(const grpc::ClientContext& ctx, const grpc::Status& status,
                                  absl::string_view op, absl::string_view what) const {
  const std::string context = absl::StrCat(op, what.empty() ? "" : " ", what);
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // ferryd itself answers UNAVAILABLE when every holder of an object died; then the
      // channel is still up and its message names the lost node.
      if (channel_->GetState(false) == GRPC_CHANNEL_READY) break;
      return absl::UnavailableError(
          absl::StrCat(context, ": lost ferryd at '", socket_path_, "': ", status.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      // ferryd's own DEADLINE_EXCEEDED (Get's wait) arrives before our deadline and names the key.
      if (std::chrono::system_clock::now() < ctx.deadline()) break;
      return absl::DeadlineExceededError(
          absl::StrCat(context, ": ferryd at '", socket_path_, "' did not answer in time"));
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::UnimplementedError(
          absl::StrCat(context, ": ferryd at '", socket_path_,
                       "' does not support this: ", status.error_message()));
    default:
      break;
  }
  return FromGrpc(status);
}

absl::StatusOr<uint8_t*> ClientImpl::Locate(absl::string_view op, const ObjectName& name,
                                            uint64_t offset, uint64_t size) const {
  if (!arena_->Contains(offset, size)) {
    return absl::InternalError(absl::StrCat(op, " ", Describe(name), ": ferryd placed ", size,
                                            " bytes at offset ", offset, ", outside its ",
                                            arena_->size(), "-byte arena"));
  }
  return arena_->base() + offset;
}

absl::StatusOr<ArenaSlot> ClientImpl::Create(const ObjectName& name, const ObjectMeta& meta) {
  RequestOf<&proto::Sidecar::Stub::Create> req;
  req.set_session(session_);
  sdk::NameToProto(name, req.mutable_ref());
  sdk::MetaToProto(meta, req.mutable_meta());
  ReplyOf<&proto::Sidecar::Stub::Create> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::Create, req, &reply, absl::ZeroDuration(),
                             "Create", Describe(name)));
  absl::StatusOr<uint8_t*> data = Locate("Create", name, reply.offset(), meta.size);
  if (!data.ok()) {
    (void)Abort(name);  // the bounds error is the one worth reporting
    return data.status();
  }
  ArenaSlot slot;
  slot.data = *data;
  slot.meta = meta;
  return slot;
}

absl::Status ClientImpl::Seal(const ObjectName& name) {
  RequestOf<&proto::Sidecar::Stub::Seal> req;
  req.set_session(session_);
  sdk::NameToProto(name, req.mutable_ref());
  ReplyOf<&proto::Sidecar::Stub::Seal> reply;
  return Call(&proto::Sidecar::Stub::Seal, req, &reply, absl::ZeroDuration(), "Seal",
              Describe(name));
}

absl::Status ClientImpl::Abort(const ObjectName& name) {
  RequestOf<&proto::Sidecar::Stub::Abort> req;
  req.set_session(session_);
  sdk::NameToProto(name, req.mutable_ref());
  ReplyOf<&proto::Sidecar::Stub::Abort> reply;
  return Call(&proto::Sidecar::Stub::Abort, req, &reply, absl::ZeroDuration(), "Abort",
              Describe(name));
}

proto::GetRequest ClientImpl::GetRequestFor(const ObjectName& name, absl::Duration timeout) const {
  RequestOf<&proto::Sidecar::Stub::Get> req;
  req.set_session(session_);
  sdk::NameToProto(name, req.mutable_ref());
  req.set_timeout_ms(sdk::TimeoutToMs(timeout));
  return req;
}

absl::StatusOr<ArenaSlot> ClientImpl::SlotFromGetReply(const ObjectName& name,
                                                       const proto::GetReply& reply) {
  // From here on we hold a pin: drop it on any failure.
  absl::StatusOr<ObjectMeta> meta = sdk::MetaFromProto(reply.meta());
  absl::StatusOr<uint8_t*> data = meta.ok() ? Locate("Get", name, reply.offset(), meta->size)
                                            : absl::StatusOr<uint8_t*>(meta.status());
  if (!data.ok()) {
    (void)Release(name);
    return Annotate(data.status(), absl::StrCat("Get ", Describe(name)));
  }
  ArenaSlot slot;
  slot.data = *data;
  slot.meta = *meta;
  slot.info = sdk::GetInfoFromProto(reply);
  return slot;
}

std::optional<std::string> ClientImpl::LocalCall(shm::LocalOp op, const google::protobuf::Message& request) {
  if (!options_.local_fast_path) return std::nullopt;
  absl::MutexLock lock(&local_mu_);
  if (local_broken_) return std::nullopt;
  shm::LocalReply reply;
  const int timeout_ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(options_.rpc_timeout), 1, INT32_MAX));
  if (absl::Status s = shm::LocalCall(conn_, op, local_next_id_++, request.SerializeAsString(), timeout_ms, &reply);
      !s.ok()) {
    local_broken_ = true;
    return std::nullopt;
  }
  if (reply.kind != shm::LocalReplyKind::kOk) return std::nullopt;
  return std::move(reply.body);
}

bool ClientImpl::LocalGet(const ObjectName& name, const proto::GetRequest& req, proto::GetReply* reply) {
  std::optional<std::string> body = LocalCall(shm::LocalOp::kGet, req);
  if (!body.has_value()) return false;
  if (reply->ParseFromString(*body)) return true;
  // ferryd pinned it but its answer does not parse: drop that pin; the caller asks by RPC.
  (void)Release(name);
  reply->Clear();
  return false;
}

absl::StatusOr<ArenaSlot> ClientImpl::Get(const ObjectName& name, absl::Duration timeout) {
  const RequestOf<&proto::Sidecar::Stub::Get> req = GetRequestFor(name, timeout);
  ReplyOf<&proto::Sidecar::Stub::Get> reply;
  // An object already sealed on this node: no RPC. The pin is taken either way.
  if (LocalGet(name, req, &reply)) return SlotFromGetReply(name, reply);
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::Get, req, &reply,
                             absl::Milliseconds(req.timeout_ms()), "Get", Describe(name)));
  return SlotFromGetReply(name, reply);
}

std::shared_ptr<PendingGet> ClientImpl::StartGet(const ObjectName& name, absl::Duration timeout) {
  auto get = std::make_shared<PendingGet>(name);
  get->request() = GetRequestFor(name, timeout);
  // Sealed on this node already: finished now, pinned, without an RPC.
  if (LocalGet(name, get->request(), &get->reply())) {
    get->Complete(grpc::Status::OK);
    return get;
  }
  get->ctx().set_deadline(absl::ToChronoTime(
      absl::Now() + absl::Milliseconds(get->request().timeout_ms()) + options_.rpc_timeout));
  const std::optional<uint64_t> id = gets_->Register(get);
  if (!id.has_value()) {
    return std::make_shared<PendingGet>(
        name, absl::CancelledError(absl::StrCat("Get ", Describe(name),
                                                ": the client was closed before it started")));
  }
  // The callback owns a reference to the call (its context, request and reply must live
  // until it runs) and to the registry, but not to this ClientImpl. It drops the call before
  // leaving the registry: while it is registered, the ClientImpl (and so the channel, which
  // the context references) is alive, so the last channel reference never goes on gRPC's
  // thread.
  stub_->async()->Get(&get->ctx(), &get->request(), &get->reply(),
                      [get, registry = gets_, id = *id](grpc::Status status) mutable {
                        get->Complete(std::move(status));
                        get.reset();
                        registry->Unregister(id);
                      });
  return get;
}

absl::StatusOr<ArenaSlot> ClientImpl::FinishGet(PendingGet& get) {
  bool already_taken = false;
  std::optional<PendingGet::Outcome> outcome = get.Take(&already_taken);
  if (!outcome.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Get ", Describe(get.name()),
        already_taken ? ": its view was already taken by an earlier Wait" : ": not finished"));
  }
  if (!outcome->early.ok()) return outcome->early;
  if (outcome->cancelled) {
    // The reply may have arrived before the cancellation took effect: drop its pin.
    if (outcome->rpc.ok()) (void)Release(get.name());
    return absl::CancelledError(absl::StrCat(
        "Get ", Describe(get.name()), ": cancelled (by Cancel, or the Client was destroyed)"));
  }
  if (!outcome->rpc.ok()) return RpcError(get.ctx(), outcome->rpc, "Get", Describe(get.name()));
  return SlotFromGetReply(get.name(), get.reply());
}

void ClientImpl::CloseGets() { gets_->CloseAndDrain(); }

absl::Status ClientImpl::Release(const ObjectName& name) {
  RequestOf<&proto::Sidecar::Stub::Release> req;
  req.set_session(session_);
  sdk::NameToProto(name, req.mutable_ref());
  // A failed local Release changed nothing: the RPC then does it, or reports why not.
  if (LocalCall(shm::LocalOp::kRelease, req).has_value()) return absl::OkStatus();
  ReplyOf<&proto::Sidecar::Stub::Release> reply;
  return Call(&proto::Sidecar::Stub::Release, req, &reply, absl::ZeroDuration(), "Release",
              Describe(name));
}

absl::Status ClientImpl::Delete(const ObjectName& name) {
  RequestOf<&proto::Sidecar::Stub::Delete> req;
  req.set_session(session_);
  sdk::NameToProto(name, req.mutable_ref());
  ReplyOf<&proto::Sidecar::Stub::Delete> reply;
  return Call(&proto::Sidecar::Stub::Delete, req, &reply, absl::ZeroDuration(), "Delete",
              Describe(name));
}

absl::StatusOr<std::vector<ObjectInfo>> ClientImpl::List(const std::string& ns,
                                                         const std::string& prefix,
                                                         uint32_t limit) {
  RequestOf<&proto::Sidecar::Stub::List> req;
  req.set_ns(ns);
  req.set_prefix(prefix);
  req.set_limit(limit);
  ReplyOf<&proto::Sidecar::Stub::List> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::List, req, &reply, absl::ZeroDuration(), "List",
                             PrintableName(ns, prefix)));
  std::vector<ObjectInfo> out;
  out.reserve(reply.objects_size());
  for (const proto::ListedObject& listed : reply.objects()) {
    FERRY_ASSIGN_OR_RETURN(ObjectInfo info, sdk::ListedFromProto(listed));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<BroadcastResult> ClientImpl::Broadcast(const ObjectName& name,
                                                      const std::vector<std::string>& nodes,
                                                      absl::Duration timeout) {
  RequestOf<&proto::Sidecar::Stub::Broadcast> req;
  sdk::NameToProto(name, req.mutable_ref());
  for (const std::string& node : nodes) req.add_nodes(node);
  const uint32_t timeout_ms = sdk::TimeoutToMs(timeout);
  req.set_timeout_ms(timeout_ms);
  ReplyOf<&proto::Sidecar::Stub::Broadcast> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::Broadcast, req, &reply,
                             absl::Milliseconds(timeout_ms), "Broadcast", Describe(name)));
  return sdk::BroadcastFromProto(reply);
}

absl::StatusOr<BatchBroadcastResult> ClientImpl::BroadcastBatch(const std::vector<ObjectName>& names,
                                                                const std::vector<std::string>& nodes,
                                                                absl::Duration timeout) {
  RequestOf<&proto::Sidecar::Stub::BroadcastBatch> req;
  for (const ObjectName& name : names) sdk::NameToProto(name, req.add_refs());
  for (const std::string& node : nodes) req.add_nodes(node);
  const uint32_t timeout_ms = sdk::TimeoutToMs(timeout);
  req.set_timeout_ms(timeout_ms);
  ReplyOf<&proto::Sidecar::Stub::BroadcastBatch> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::BroadcastBatch, req, &reply, absl::Milliseconds(timeout_ms),
                             "BroadcastBatch", absl::StrCat(names.size(), " objects")));
  return sdk::BatchBroadcastFromProto(reply);
}

absl::StatusOr<ReduceResult> ClientImpl::Reduce(const std::vector<ObjectName>& inputs, const ObjectName& result,
                                                ReduceOp op, DType dtype, uint32_t num_objects,
                                                absl::Duration timeout, bool all, const std::string& root) {
  proto::SidecarReduceRequest req;
  req.set_root(root);
  for (const ObjectName& in : inputs) sdk::NameToProto(in, req.add_inputs());
  sdk::NameToProto(result, req.mutable_result());
  req.set_num_objects(num_objects);
  req.set_op(static_cast<proto::ReduceOp>(op));
  req.set_dtype(static_cast<proto::DType>(dtype));
  const uint32_t timeout_ms = sdk::TimeoutToMs(timeout);
  req.set_timeout_ms(timeout_ms);
  proto::SidecarReduceReply reply;
  const char* what = all ? "AllReduce" : "Reduce";
  FERRY_RETURN_IF_ERROR(Call(all ? &proto::Sidecar::Stub::AllReduce : &proto::Sidecar::Stub::Reduce, req, &reply,
                             absl::Milliseconds(timeout_ms), what, Describe(result)));
  return sdk::ReduceFromProto(reply);
}

absl::StatusOr<proto::GroupReply> ClientImpl::Group(const proto::GroupRequest& req, absl::Duration timeout,
                                                    absl::string_view op, absl::string_view what) {
  proto::GroupReply reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::Group, req, &reply, timeout, op, what));
  return reply;
}

absl::StatusOr<NodeStatus> ClientImpl::Status() {
  RequestOf<&proto::Sidecar::Stub::Status> req;
  ReplyOf<&proto::Sidecar::Stub::Status> reply;
  FERRY_RETURN_IF_ERROR(
      Call(&proto::Sidecar::Stub::Status, req, &reply, absl::ZeroDuration(), "Status", ""));
  return sdk::StatusFromProto(reply, node_id_);
}

template <typename MetaOf, typename Undo>
std::vector<absl::StatusOr<ArenaSlot>> ClientImpl::SlotsFrom(absl::string_view op, const std::vector<ObjectName>& names,
                                                             const proto::BatchOutcomesReply& reply, MetaOf meta_of,
                                                             Undo undo) const {
  std::vector<absl::StatusOr<ArenaSlot>> out;
  out.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const proto::BatchOutcome& o = reply.outcomes(static_cast<int>(i));
    if (o.code() != 0) {
      out.push_back(OutcomeStatus(o));
      continue;
    }
    absl::StatusOr<ObjectMeta> meta = meta_of(i, o);
    absl::StatusOr<uint8_t*> data = meta.ok() ? Locate(op, names[i], o.offset(), meta->size)
                                              : absl::StatusOr<uint8_t*>(meta.status());
    if (!data.ok()) {
      undo(names[i]);
      out.push_back(Annotate(data.status(), absl::StrCat(op, " ", Describe(names[i]))));
      continue;
    }
    ArenaSlot slot;
    slot.data = *data;
    slot.meta = *meta;
    slot.info.pulled = o.pulled();
    out.push_back(slot);
  }
  return out;
}

absl::StatusOr<std::vector<absl::StatusOr<ArenaSlot>>> ClientImpl::CreateBatch(
    const std::vector<ObjectName>& names, const std::vector<ObjectMeta>& metas) {
  RequestOf<&proto::Sidecar::Stub::CreateBatch> req;
  req.set_session(session_);
  for (size_t i = 0; i < names.size(); ++i) {
    proto::CreateBatchEntry* e = req.add_entries();
    sdk::NameToProto(names[i], e->mutable_ref());
    sdk::MetaToProto(metas[i], e->mutable_meta());
  }
  ReplyOf<&proto::Sidecar::Stub::CreateBatch> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::CreateBatch, req, &reply, absl::ZeroDuration(), "CreateBatch",
                             DescribeBatch(names)));
  FERRY_RETURN_IF_ERROR(CheckOutcomes("CreateBatch", reply, names.size()));
  return SlotsFrom(
      "CreateBatch", names, reply, [&](size_t i, const proto::BatchOutcome&) -> absl::StatusOr<ObjectMeta> { return metas[i]; },
      [this](const ObjectName& name) { (void)Abort(name); });
}

absl::StatusOr<std::vector<absl::Status>> ClientImpl::SealBatch(const std::vector<ObjectName>& names) {
  const auto req = RefsRequest<RequestOf<&proto::Sidecar::Stub::SealBatch>>(session_, names);
  ReplyOf<&proto::Sidecar::Stub::SealBatch> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::SealBatch, req, &reply, absl::ZeroDuration(), "SealBatch",
                             DescribeBatch(names)));
  FERRY_RETURN_IF_ERROR(CheckOutcomes("SealBatch", reply, names.size()));
  return Statuses(reply);
}

absl::StatusOr<std::vector<absl::StatusOr<ArenaSlot>>> ClientImpl::GetBatch(const std::vector<ObjectName>& names,
                                                                            absl::Duration timeout) {
  auto req = RefsRequest<RequestOf<&proto::Sidecar::Stub::GetBatch>>(session_, names);
  req.set_timeout_ms(sdk::TimeoutToMs(timeout));
  ReplyOf<&proto::Sidecar::Stub::GetBatch> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::GetBatch, req, &reply, absl::Milliseconds(req.timeout_ms()),
                             "GetBatch", DescribeBatch(names)));
  // (On a malformed reply the pins stay until the session ends.)
  FERRY_RETURN_IF_ERROR(CheckOutcomes("GetBatch", reply, names.size()));
  return SlotsFrom(
      "GetBatch", names, reply, [](size_t, const proto::BatchOutcome& o) { return sdk::MetaFromProto(o.meta()); },
      [this](const ObjectName& name) { (void)Release(name); });
}

absl::StatusOr<std::vector<absl::Status>> ClientImpl::DeleteBatch(const std::vector<ObjectName>& names) {
  const auto req = RefsRequest<RequestOf<&proto::Sidecar::Stub::DeleteBatch>>(session_, names);
  ReplyOf<&proto::Sidecar::Stub::DeleteBatch> reply;
  FERRY_RETURN_IF_ERROR(Call(&proto::Sidecar::Stub::DeleteBatch, req, &reply, absl::ZeroDuration(), "DeleteBatch",
                             DescribeBatch(names)));
  FERRY_RETURN_IF_ERROR(CheckOutcomes("DeleteBatch", reply, names.size()));
  return Statuses(reply);
}

}  // namespace ferry
