#include "sdk/convert.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/names.h"
#include "core/object_meta.h"

namespace ferry::sdk {

// The public enum and the wire enum share their numbers (proto/dtype_parity.cc checks it),
// so conversion is a cast.
proto::DType DTypeToProto(DType dtype) { return static_cast<proto::DType>(dtype); }

absl::StatusOr<DType> DTypeFromProto(int value) {
  if (value < 0 || value >= static_cast<int>(kNumDTypes)) {
    return absl::InternalError(
        absl::StrCat("ferryd sent unknown dtype ", value, " (is the client older than ferryd?)"));
  }
  return static_cast<DType>(value);
}

absl::Status ValidateName(const ObjectName& name) { return ValidateObjectName(name.ns, name.key); }

absl::StatusOr<ObjectMeta> NormalizeMeta(const ObjectName& name, const ObjectMeta& meta) {
  absl::StatusOr<uint64_t> count = ValidateObjectMeta(meta.size, static_cast<uint32_t>(meta.dtype), meta.count);
  if (!count.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("object ", PrintableName(name.ns, name.key), ": ", count.status().message()));
  }
  ObjectMeta out = meta;
  out.count = *count;
  return out;
}

void NameToProto(const ObjectName& name, proto::ObjectRef* ref) {
  ref->set_ns(name.ns);
  ref->set_key(name.key);
}

ObjectName NameFromProto(const proto::ObjectRef& ref) {
  ObjectName name;
  name.ns = ref.ns();
  name.key = ref.key();
  return name;
}

void MetaToProto(const ObjectMeta& meta, proto::ObjectMeta* out) {
  out->set_size(meta.size);
  out->set_dtype(DTypeToProto(meta.dtype));
  out->set_count(meta.count);
  out->set_checksummed(meta.checksum);
}

absl::StatusOr<ObjectMeta> MetaFromProto(const proto::ObjectMeta& meta) {
  absl::StatusOr<DType> dtype = DTypeFromProto(meta.dtype());
  if (!dtype.ok()) return dtype.status();
  ObjectMeta out;
  out.size = meta.size();
  out.dtype = *dtype;
  out.count = meta.count();
  out.checksum = meta.checksummed();
  return out;
}

NodeInfo NodeFromProto(const proto::NodeInfo& node) {
  NodeInfo out;
  out.id = node.node_id();
  out.name = node.name();
  out.alive = node.alive();
  out.arena_bytes = node.arena_bytes();
  out.arena_used = node.arena_used();
  out.objects = node.objects();
  out.bandwidth_bps = node.bandwidth_bps();
  out.latency_s = node.latency_s();
  out.labels.insert(node.labels().begin(), node.labels().end());
  return out;
}

NodeStatus StatusFromProto(const proto::StatusReply& reply, uint64_t self_id) {
  NodeStatus out;
  out.self = NodeFromProto(reply.self());
  if (out.self.id == 0) out.self.id = self_id;
  // This node answered, so it is alive whatever its last heartbeat said.
  out.self.alive = true;
  const proto::LocalStats& local = reply.local();
  out.self.arena_bytes = local.arena_bytes();
  out.self.arena_used = local.arena_used();
  out.self.objects = local.objects();
  out.coordinator_connected = reply.coordinator_connected();
  out.pinned = local.pinned();
  out.evictions = local.evictions();
  out.bytes_received = local.bytes_received();
  out.bytes_sent = local.bytes_sent();
  out.retries = local.retries();
  out.failures = local.failures();
  out.cluster.reserve(reply.cluster_size());
  for (const proto::NodeInfo& node : reply.cluster()) out.cluster.push_back(NodeFromProto(node));
  return out;
}

absl::StatusOr<ObjectInfo> ListedFromProto(const proto::ListedObject& listed) {
  ObjectInfo out;
  out.name = NameFromProto(listed.ref());
  absl::StatusOr<ObjectMeta> meta = MetaFromProto(listed.meta());
  if (!meta.ok()) {
    return absl::Status(meta.status().code(),
                        absl::StrCat("listing ", PrintableName(out.name.ns, out.name.key), ": ",
                                     meta.status().message()));
  }
  out.meta = *meta;
  out.complete_copies = listed.complete_copies();
  out.partial_copies = listed.partial_copies();
  return out;
}

GetInfo GetInfoFromProto(const proto::GetReply& reply) {
  GetInfo out;
  out.pulled = reply.pulled();
  out.source_node = reply.source_node();
  out.seconds = reply.pull_seconds();
  return out;
}

BroadcastResult BroadcastFromProto(const proto::SidecarBroadcastReply& reply) {
  BroadcastResult out;
  out.seconds = reply.seconds();
  out.targets.reserve(reply.results_size());
  for (const proto::SidecarBroadcastResult& r : reply.results()) {
    BroadcastResult::Target target;
    target.node = r.node();
    target.ok = r.ok();
    target.error = r.error();
    out.targets.push_back(std::move(target));
  }
  return out;
}

ReduceResult ReduceFromProto(const proto::SidecarReduceReply& reply) {
  ReduceResult out;
  out.result.ns = reply.result().ns();
  out.result.key = reply.result().key();
  out.meta.size = reply.meta().size();
  out.meta.dtype = static_cast<DType>(reply.meta().dtype());
  out.meta.count = reply.meta().count();
  out.root_node = reply.root_node();
  out.used.assign(reply.used().begin(), reply.used().end());
  for (const proto::SidecarBroadcastResult& r : reply.results()) {
    out.copies.push_back(BroadcastResult::Target{r.node(), r.ok(), r.error()});
  }
  out.seconds = reply.seconds();
  return out;
}

GroupInfo GroupFromProto(const proto::GroupInfo& g) {
  GroupInfo out;
  out.name = g.name();
  out.id = g.group_id();
  for (const proto::GroupMember& m : g.members()) out.members.push_back(GroupMember{m.rank(), m.node_id(), m.name(), m.host()});
  out.revoked = g.revoked();
  out.revoked_why = g.revoked_why();
  out.collectives = g.collectives();
  out.lease_id = g.lease_id();
  return out;
}

GroupResult GroupResultFromProto(const proto::GroupCollectiveReply& reply) {
  GroupResult out;
  out.result.ns = reply.result().ns();
  out.result.key = reply.result().key();
  out.meta.size = reply.meta().size();
  out.meta.dtype = static_cast<DType>(reply.meta().dtype());
  out.meta.count = reply.meta().count();
  out.nodes.assign(reply.holder_names().begin(), reply.holder_names().end());
  out.seconds = reply.seconds();
  return out;
}

BatchBroadcastResult BatchBroadcastFromProto(const proto::SidecarBroadcastBatchReply& reply) {
  BatchBroadcastResult out;
  out.seconds = reply.seconds();
  out.bytes = reply.bytes();
  for (const proto::SidecarBroadcastResult& r : reply.results()) {
    out.targets.push_back(BroadcastResult::Target{r.node(), r.ok(), r.error()});
  }
  for (const proto::SidecarBatchEntryError& e : reply.errors()) {
    // A code outside gRPC's range (a newer ferryd) reads as UNKNOWN.
    const bool known = e.code() > 0 && e.code() <= static_cast<int>(absl::StatusCode::kUnauthenticated);
    out.errors.push_back(BatchBroadcastResult::EntryError{
        e.index(), e.node(), known ? static_cast<absl::StatusCode>(e.code()) : absl::StatusCode::kUnknown, e.error()});
  }
  return out;
}

uint32_t TimeoutToMs(absl::Duration timeout) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  if (timeout <= absl::ZeroDuration()) return 0;
  if (timeout >= absl::Milliseconds(kMax)) return kMax;
  return static_cast<uint32_t>(
      absl::ToInt64Milliseconds(timeout + absl::Milliseconds(1) - absl::Nanoseconds(1)));
}

}  // namespace ferry::sdk
