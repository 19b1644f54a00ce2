#include "dataplane/sidecar/sidecar_service.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/batch.h"
#include "core/names.h"
#include "core/object_meta.h"
#include "common/status_macros.h"
#include "ferry/object.h"
#include "proto/status_bridge.h"

namespace ferry::dataplane {
namespace {

absl::Status CheckRef(const proto::ObjectRef& ref) { return ValidateObjectName(ref.ns(), ref.key()); }

// The batch-name check (core/batch.h) over `count` refs; their keys into `keys` (if not null).
template <typename RefAt>
absl::Status CheckBatch(int count, RefAt ref_at, std::vector<std::string>* keys) {
  FERRY_RETURN_IF_ERROR(ValidateBatchNames(static_cast<size_t>(count), [&](size_t i) {
    const proto::ObjectRef& ref = ref_at(static_cast<int>(i));
    return std::pair<absl::string_view, absl::string_view>(ref.ns(), ref.key());
  }));
  if (keys == nullptr) return absl::OkStatus();
  keys->reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) keys->push_back(ref_at(i).key());
  return absl::OkStatus();
}

// A batch request naming its objects in `refs`: its session and names checked; the keys.
template <typename Request>
absl::Status CheckRefsBatch(const SidecarService& service, const Request& req, std::vector<std::string>* keys) {
  FERRY_RETURN_IF_ERROR(service.CheckSession(req.session()));
  return CheckBatch(req.refs_size(), [&req](int i) -> const proto::ObjectRef& { return req.refs(i); }, keys);
}

void SetOutcome(const absl::Status& s, proto::BatchOutcome* out) {
  out->set_code(static_cast<int32_t>(s.code()));
  if (!s.ok()) out->set_error(std::string(s.message()));
}

// The reply of a batch whose outcomes are statuses (or the batch's error).
grpc::Status Statuses(const absl::StatusOr<std::vector<absl::Status>>& r, absl::Time start,
                      proto::BatchOutcomesReply* reply) {
  if (!r.ok()) return ToGrpc(r.status());
  for (const absl::Status& s : *r) SetOutcome(s, reply->add_outcomes());
  reply->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  return grpc::Status::OK;
}

void SetPinMeta(const StoredMeta& m, proto::ObjectMeta* out) {
  out->set_size(m.size);
  out->set_dtype(static_cast<proto::DType>(m.dtype));
  out->set_count(m.count);
}

}  // namespace

absl::StatusOr<StoredMeta> StoredMetaFromProto(const proto::ObjectMeta& meta) {
  absl::StatusOr<uint64_t> count = ValidateObjectMeta(meta.size(), static_cast<uint32_t>(meta.dtype()), meta.count());
  if (!count.ok()) return count.status();
  StoredMeta out{meta.size(), static_cast<uint32_t>(meta.dtype()), *count};
  out.checksummed = meta.checksummed();   // a client asks for a checksum; ferryd computes it at Seal
  return out;
}

absl::Status SidecarService::CheckSession(uint64_t session) const {
  if (session == 0 || !sessions_->IsLive(session)) {
    return absl::FailedPreconditionError(
        absl::StrCat("unknown session ", session, ": connect through the arena socket first"));
  }
  return absl::OkStatus();
}

grpc::Status SidecarService::Create(grpc::ServerContext*, const proto::CreateRequest* req, proto::CreateReply* reply) {
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  absl::StatusOr<StoredMeta> meta = StoredMetaFromProto(req->meta());
  if (!meta.ok()) return ToGrpc(meta.status());
  absl::StatusOr<uint64_t> offset = node_->CreateObject(req->ref().ns(), req->ref().key(), *meta, req->session());
  if (!offset.ok()) return ToGrpc(offset.status());
  reply->set_offset(*offset);
  return grpc::Status::OK;
}

grpc::Status SidecarService::Seal(grpc::ServerContext*, const proto::SealRequest* req, proto::SealReply*) {
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  return ToGrpc(node_->Seal(req->ref().ns(), req->ref().key(), req->session()));
}

grpc::Status SidecarService::Abort(grpc::ServerContext*, const proto::AbortRequest* req, proto::AbortReply*) {
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  return ToGrpc(node_->store().Abort(req->ref().ns(), req->ref().key(), req->session()));
}

grpc::Status SidecarService::Get(grpc::ServerContext* ctx, const proto::GetRequest* req, proto::GetReply* reply) {
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  const absl::Time deadline = absl::Now() + absl::Milliseconds(req->timeout_ms());
  absl::StatusOr<GetResult> r = node_->Get(req->ref().ns(), req->ref().key(), req->session(), deadline);
  if (!r.ok()) return ToGrpc(r.status());
  // Nobody will receive this pin if the client went away while we waited (its session's pins
  // were already dropped) or cancelled the call (an async Get's Cancel).
  const bool session_ended = !sessions_->IsLive(req->session());
  if (session_ended || (ctx != nullptr && ctx->IsCancelled())) {
    node_->store().Release(req->ref().ns(), req->ref().key(), req->session()).IgnoreError();
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        session_ended ? "client session ended during Get" : "the client cancelled the Get");
  }
  reply->set_offset(r->pin.offset);
  SetPinMeta(r->pin.meta, reply->mutable_meta());
  reply->set_pulled(r->pulled);
  reply->set_source_node(r->source_node);
  reply->set_pull_seconds(r->seconds);
  return grpc::Status::OK;
}

namespace {

// Parses a local request's body and checks that it is for `session` and names a valid object;
// the reason it cannot be answered here otherwise (the RPC then reports it properly).
template <typename Request>
std::optional<std::string> ParseLocal(const shm::LocalRequest& request, uint64_t session, Request* req) {
  if (!req->ParseFromString(request.body)) return absl::StrCat(req->GetTypeName(), " does not parse");
  if (req->session() != session) return std::string("the request names another session");
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return std::string(s.message());
  return std::nullopt;
}

}  // namespace

shm::LocalReply SidecarService::ServeLocal(uint64_t session, const shm::LocalRequest& request) {
  shm::LocalReply reply;   // kFallback until answered
  if (request.op == shm::LocalOp::kGet) {
    proto::GetRequest req;
    if (std::optional<std::string> why = ParseLocal(request, session, &req)) {
      reply.body = std::move(*why);
      return reply;
    }
    absl::StatusOr<PinnedObject> pin = node_->store().PinSealed(req.ref().ns(), req.ref().key(), session);
    if (!pin.ok()) {
      reply.body = std::string(pin.status().message());
      return reply;
    }
    proto::GetReply out;
    out.set_offset(pin->offset);
    SetPinMeta(pin->meta, out.mutable_meta());
    reply.kind = shm::LocalReplyKind::kOk;
    reply.body = out.SerializeAsString();
  } else if (request.op == shm::LocalOp::kRelease) {
    proto::ReleaseRequest req;
    if (std::optional<std::string> why = ParseLocal(request, session, &req)) {
      reply.body = std::move(*why);
      return reply;
    }
    if (absl::Status s = node_->store().Release(req.ref().ns(), req.ref().key(), session); !s.ok()) {
      reply.body = std::string(s.message());
      return reply;
    }
    reply.kind = shm::LocalReplyKind::kOk;
  }
  return reply;
}

grpc::Status SidecarService::Release(grpc::ServerContext*, const proto::ReleaseRequest* req, proto::ReleaseReply*) {
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  return ToGrpc(node_->store().Release(req->ref().ns(), req->ref().key(), req->session()));
}

grpc::Status SidecarService::Delete(grpc::ServerContext*, const proto::DeleteObjectRequest* req, proto::DeleteObjectReply*) {
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  return ToGrpc(node_->DeleteObject(req->ref().ns(), req->ref().key()));
}

grpc::Status SidecarService::List(grpc::ServerContext*, const proto::ListObjectsRequest* req,
                                  proto::ListObjectsReply* reply) {
  const std::string ns = req->ns().empty() ? std::string(kDefaultNamespace) : req->ns();
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return ToGrpc(s);
  absl::StatusOr<proto::ListReply> r = node_->List(ns, req->prefix(), req->limit());
  if (!r.ok()) return ToGrpc(r.status());
  for (const proto::ListEntry& e : r->objects()) {
    proto::ListedObject* o = reply->add_objects();
    *o->mutable_ref() = e.ref();
    *o->mutable_meta() = e.meta();
    o->set_complete_copies(e.complete_copies());
    o->set_partial_copies(e.partial_copies());
  }
  return grpc::Status::OK;
}

grpc::Status SidecarService::Status(grpc::ServerContext*, const proto::StatusRequest*, proto::StatusReply* reply) {
  StoreStats st = node_->store().Stats();
  proto::NodeInfo* self = reply->mutable_self();
  self->set_node_id(node_->node_id());
  self->set_name(node_->name());
  self->set_alive(true);
  self->set_transport(std::string(node_->transport().Name()));
  self->set_arena_bytes(st.capacity);
  self->set_arena_used(st.used);
  self->set_objects(st.objects);
  self->set_bandwidth_bps(node_->bandwidth_bps());
  self->set_latency_s(node_->latency_s());
  proto::LocalStats* local = reply->mutable_local();
  local->set_arena_bytes(st.capacity);
  local->set_arena_used(st.used);
  local->set_objects(st.objects);
  local->set_pinned(st.pinned);
  local->set_evictions(st.evictions);
  local->set_bytes_received(node_->transport().Stats().bytes_fetched);   // live, per chunk
  local->set_chunks_received(node_->counters().chunks_received.load());
  local->set_bytes_sent(node_->chunk_server().bytes_served());
  local->set_chunks_sent(node_->chunk_server().chunks_served());
  local->set_retries(node_->counters().retries.load());
  local->set_failures(node_->counters().failures.load());
  reply->set_coordinator_connected(node_->coordinator_connected());
  if (absl::StatusOr<proto::ClusterStatusReply> cluster = node_->ClusterStatus(); cluster.ok()) {
    for (const proto::NodeInfo& n : cluster->nodes()) *reply->add_cluster() = n;
  }
  return grpc::Status::OK;
}

// Node names (or decimal ids) to ids, and every node's name by id (for the reply). A restarted
// node leaves a dead record under the same name: the live one is meant. NOT_FOUND for a name
// no node has.
absl::Status SidecarService::ResolveNodes(const google::protobuf::RepeatedPtrField<std::string>& wanted,
                                          std::vector<uint64_t>* ids) {
  if (wanted.empty()) return absl::OkStatus();   // every live node: nothing to resolve
  absl::StatusOr<proto::ClusterStatusReply> cluster = node_->ClusterStatus();
  if (!cluster.ok()) return cluster.status();
  std::map<uint64_t, std::string> names;
  std::map<std::string, uint64_t> live;   // name -> the live node of that name
  for (const proto::NodeInfo& n : cluster->nodes()) {
    names[n.node_id()] = n.name();
    if (n.alive()) live[n.name()] = n.node_id();
  }
  for (const std::string& want : wanted) {
    uint64_t id = 0;
    if (auto it = live.find(want); it != live.end()) {
      id = it->second;
    } else {
      for (const auto& [nid, name] : names) {
        if (name == want) id = nid;
      }
    }
    if (id == 0 && (!absl::SimpleAtoi(want, &id) || !names.contains(id))) {
      return absl::NotFoundError(absl::StrCat("no node named '", want, "' in the cluster"));
    }
    if (std::find(ids->begin(), ids->end(), id) != ids->end()) {
      return absl::InvalidArgumentError(absl::StrCat("node '", want, "' is named twice"));
    }
    ids->push_back(id);
  }
  return absl::OkStatus();
}

grpc::Status SidecarService::Broadcast(grpc::ServerContext*, const proto::SidecarBroadcastRequest* req,
                                       proto::SidecarBroadcastReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  proto::BroadcastRequest breq;
  *breq.mutable_ref() = req->ref();
  breq.set_timeout_ms(req->timeout_ms() == 0 ? 60000 : req->timeout_ms());
  breq.set_wait(true);
  std::vector<uint64_t> ids;
  if (absl::Status s = ResolveNodes(req->nodes(), &ids); !s.ok()) return ToGrpc(s);
  for (uint64_t id : ids) breq.add_node_ids(id);
  absl::StatusOr<proto::BroadcastReply> r = node_->Broadcast(breq);
  if (!r.ok()) return ToGrpc(r.status());
  for (const proto::BroadcastResult& res : r->results()) {
    proto::SidecarBroadcastResult* out = reply->add_results();
    out->set_node(!res.node_name().empty() ? res.node_name() : absl::StrCat(res.node_id()));
    out->set_ok(res.ok());
    out->set_error(res.error());
  }
  reply->set_seconds(r->seconds());
  return grpc::Status::OK;
}

grpc::Status SidecarService::BroadcastBatch(grpc::ServerContext*, const proto::SidecarBroadcastBatchRequest* req,
                                            proto::SidecarBroadcastBatchReply* reply) {
  absl::Status valid =
      CheckBatch(req->refs_size(), [req](int i) -> const proto::ObjectRef& { return req->refs(i); }, nullptr);
  if (!valid.ok()) return ToGrpc(valid);
  proto::BroadcastBatchRequest breq;
  *breq.mutable_refs() = req->refs();
  breq.set_timeout_ms(req->timeout_ms() == 0 ? 60000 : req->timeout_ms());
  breq.set_wait(true);
  std::vector<uint64_t> ids;
  if (absl::Status s = ResolveNodes(req->nodes(), &ids); !s.ok()) return ToGrpc(s);
  for (uint64_t id : ids) breq.add_node_ids(id);
  absl::StatusOr<proto::BroadcastBatchReply> r = node_->BroadcastBatch(breq);
  if (!r.ok()) return ToGrpc(r.status());
  std::map<uint64_t, std::string> names;
  for (const proto::BroadcastResult& res : r->results()) {
    const std::string name = !res.node_name().empty() ? res.node_name() : absl::StrCat(res.node_id());
    names[res.node_id()] = name;
    proto::SidecarBroadcastResult* out = reply->add_results();
    out->set_node(name);
    out->set_ok(res.ok());
    out->set_error(res.error());
  }
  for (const proto::BatchEntryError& e : r->errors()) {
    proto::SidecarBatchEntryError* out = reply->add_errors();
    out->set_index(e.index());
    if (e.node_id() != 0) out->set_node(names.contains(e.node_id()) ? names[e.node_id()] : absl::StrCat(e.node_id()));
    out->set_code(e.code());
    out->set_error(e.error());
  }
  reply->set_seconds(r->seconds());
  reply->set_bytes(r->bytes());
  return grpc::Status::OK;
}

grpc::Status SidecarService::CreateBatch(grpc::ServerContext*, const proto::CreateBatchRequest* req,
                                         proto::BatchOutcomesReply* reply) {
  const absl::Time start = absl::Now();
  if (absl::Status s = CheckSession(req->session()); !s.ok()) return ToGrpc(s);
  std::vector<std::string> keys;
  absl::Status valid = CheckBatch(
      req->entries_size(), [req](int i) -> const proto::ObjectRef& { return req->entries(i).ref(); }, &keys);
  if (!valid.ok()) return ToGrpc(valid);
  std::vector<Node::CreateEntry> entries;
  entries.reserve(keys.size());
  for (int i = 0; i < req->entries_size(); ++i) {
    absl::StatusOr<StoredMeta> meta = StoredMetaFromProto(req->entries(i).meta());
    if (!meta.ok()) {
      return ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("entry ", i, " (", PrintableName(req->entries(i).ref().ns(), keys[i]), "): ", meta.status().message())));
    }
    entries.push_back({std::move(keys[i]), *meta});
  }
  absl::StatusOr<std::vector<absl::StatusOr<uint64_t>>> r =
      node_->CreateBatch(req->entries(0).ref().ns(), entries, req->session());
  if (!r.ok()) return ToGrpc(r.status());
  for (const absl::StatusOr<uint64_t>& offset : *r) {
    proto::BatchOutcome* out = reply->add_outcomes();
    SetOutcome(offset.status(), out);
    if (offset.ok()) out->set_offset(*offset);
  }
  reply->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  return grpc::Status::OK;
}

grpc::Status SidecarService::SealBatch(grpc::ServerContext*, const proto::SealBatchRequest* req,
                                       proto::BatchOutcomesReply* reply) {
  const absl::Time start = absl::Now();
  std::vector<std::string> keys;
  if (absl::Status s = CheckRefsBatch(*this, *req, &keys); !s.ok()) return ToGrpc(s);
  return Statuses(node_->SealBatch(req->refs(0).ns(), keys, req->session()), start, reply);
}

grpc::Status SidecarService::GetBatch(grpc::ServerContext* ctx, const proto::GetBatchRequest* req,
                                      proto::BatchOutcomesReply* reply) {
  const absl::Time start = absl::Now();
  std::vector<std::string> keys;
  if (absl::Status s = CheckRefsBatch(*this, *req, &keys); !s.ok()) return ToGrpc(s);
  const std::string& ns = req->refs(0).ns();
  uint64_t pulled = 0;
  absl::StatusOr<std::vector<absl::StatusOr<GetResult>>> r =
      node_->GetBatch(ns, keys, req->session(), start + absl::Milliseconds(req->timeout_ms()), &pulled);
  if (!r.ok()) return ToGrpc(r.status());
  // As Get: nobody receives the pins if the client went away or cancelled meanwhile.
  const bool session_ended = !sessions_->IsLive(req->session());
  if (session_ended || (ctx != nullptr && ctx->IsCancelled())) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if ((*r)[i].ok()) node_->store().Release(ns, keys[i], req->session()).IgnoreError();
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, session_ended ? "client session ended during GetBatch"
                                                                   : "the client cancelled the GetBatch");
  }
  for (const absl::StatusOr<GetResult>& got : *r) {
    proto::BatchOutcome* out = reply->add_outcomes();
    SetOutcome(got.status(), out);
    if (!got.ok()) continue;
    out->set_offset(got->pin.offset);
    SetPinMeta(got->pin.meta, out->mutable_meta());
    out->set_pulled(got->pulled);
  }
  reply->set_pulled_bytes(pulled);
  reply->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  return grpc::Status::OK;
}

grpc::Status SidecarService::DeleteBatch(grpc::ServerContext*, const proto::SidecarDeleteBatchRequest* req,
                                         proto::BatchOutcomesReply* reply) {
  const absl::Time start = absl::Now();
  std::vector<std::string> keys;
  if (absl::Status s = CheckRefsBatch(*this, *req, &keys); !s.ok()) return ToGrpc(s);
  return Statuses(node_->DeleteBatch(req->refs(0).ns(), keys), start, reply);
}

grpc::Status SidecarService::Reduce(grpc::ServerContext*, const proto::SidecarReduceRequest* req,
                                    proto::SidecarReduceReply* reply) {
  return RunReduce(req, /*all=*/false, reply);
}

grpc::Status SidecarService::AllReduce(grpc::ServerContext*, const proto::SidecarReduceRequest* req,
                                       proto::SidecarReduceReply* reply) {
  return RunReduce(req, /*all=*/true, reply);
}

// Passed through; the coordinator validates it, names the problem and defaults the timeout.
grpc::Status SidecarService::Group(grpc::ServerContext*, const proto::GroupRequest* req, proto::GroupReply* reply) {
  absl::StatusOr<proto::GroupReply> out = node_->Group(*req);
  if (!out.ok()) return ToGrpc(out.status());
  *reply = std::move(*out);
  return grpc::Status::OK;
}

// The coordinator validates the request (control/collectives/reduce.h) and names the problem.
grpc::Status SidecarService::RunReduce(const proto::SidecarReduceRequest* req, bool all,
                                       proto::SidecarReduceReply* reply) {
  proto::ReduceRequest rreq;
  *rreq.mutable_inputs() = req->inputs();
  rreq.set_num_objects(req->num_objects());
  rreq.set_op(req->op());
  rreq.set_dtype(req->dtype());
  *rreq.mutable_result() = req->result();
  rreq.set_timeout_ms(req->timeout_ms() == 0 ? 60000 : req->timeout_ms());
  if (!req->root().empty()) {
    google::protobuf::RepeatedPtrField<std::string> names;
    names.Add()->assign(req->root());
    std::vector<uint64_t> ids;
    if (absl::Status s = ResolveNodes(names, &ids); !s.ok()) return ToGrpc(s);
    if (ids.size() == 1) rreq.set_root_node(ids[0]);
  }
  absl::StatusOr<proto::ReduceReply> r = node_->Reduce(rreq, all);
  if (!r.ok()) return ToGrpc(r.status());
  *reply->mutable_result() = r->result();
  *reply->mutable_meta() = r->meta();
  *reply->mutable_used() = r->used();
  reply->set_seconds(r->seconds());
  std::string root = r->root_node_name();
  // A coordinator that does not name the root: look the name up (one more round trip).
  if (root.empty()) root = absl::StrCat(r->root_node());
  if (r->root_node_name().empty()) {
    if (absl::StatusOr<proto::ClusterStatusReply> cluster = node_->ClusterStatus(); cluster.ok()) {
      for (const proto::NodeInfo& n : cluster->nodes()) {
        if (n.node_id() == r->root_node()) root = n.name();
      }
    }
  }
  reply->set_root_node(root);
  for (const proto::BroadcastResult& res : r->results()) {
    proto::SidecarBroadcastResult* out = reply->add_results();
    out->set_node(!res.node_name().empty() ? res.node_name() : absl::StrCat(res.node_id()));
    out->set_ok(res.ok());
    out->set_error(res.error());
  }
  return grpc::Status::OK;
}

}  // namespace ferry::dataplane
