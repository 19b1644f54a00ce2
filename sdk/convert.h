// Conversions between the public SDK types (include/ferry/object.h) and the sidecar protocol
// (proto/sidecar.proto, proto/common.proto), plus the client-side input checks that go with
// them. Internal to libferry. Pure functions: no I/O, no threads, callable from any thread.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/object.h"
#include "proto/common.pb.h"
#include "proto/group.pb.h"
#include "proto/sidecar.pb.h"

namespace ferry::sdk {

// DType <-> proto::DType; the enums share their numbers. DTypeFromProto rejects values
// outside the enum (a newer ferryd) with INTERNAL.
proto::DType DTypeToProto(DType dtype);
[[nodiscard]] absl::StatusOr<DType> DTypeFromProto(int value);

// INVALID_ARGUMENT naming what is wrong with the namespace or key.
[[nodiscard]] absl::Status ValidateName(const ObjectName& name);
// Checks `meta` for an object called `name` and fills in `count`: the dtype must be one of
// the enum, a numeric object's size must be a whole number of elements, and a given count
// must match size / DTypeSize(dtype). INVALID_ARGUMENT naming the object otherwise.
[[nodiscard]] absl::StatusOr<ObjectMeta> NormalizeMeta(const ObjectName& name,
                                                       const ObjectMeta& meta);

void NameToProto(const ObjectName& name, proto::ObjectRef* ref);
ObjectName NameFromProto(const proto::ObjectRef& ref);
void MetaToProto(const ObjectMeta& meta, proto::ObjectMeta* out);
[[nodiscard]] absl::StatusOr<ObjectMeta> MetaFromProto(const proto::ObjectMeta& meta);

NodeInfo NodeFromProto(const proto::NodeInfo& node);
// `self_id` is the node id from the arena hello, used when ferryd has not registered yet
// (self.node_id == 0). The local counters override the (heartbeat-old) self figures.
NodeStatus StatusFromProto(const proto::StatusReply& reply, uint64_t self_id);
[[nodiscard]] absl::StatusOr<ObjectInfo> ListedFromProto(const proto::ListedObject& listed);
GetInfo GetInfoFromProto(const proto::GetReply& reply);
BroadcastResult BroadcastFromProto(const proto::SidecarBroadcastReply& reply);
BatchBroadcastResult BatchBroadcastFromProto(const proto::SidecarBroadcastBatchReply& reply);
ReduceResult ReduceFromProto(const proto::SidecarReduceReply& reply);
GroupInfo GroupFromProto(const proto::GroupInfo& g);
GroupResult GroupResultFromProto(const proto::GroupCollectiveReply& reply);

// A timeout as the protocol's uint32 milliseconds: negative -> 0, too long (or infinite) ->
// UINT32_MAX, otherwise rounded up to a whole millisecond.
uint32_t TimeoutToMs(absl::Duration timeout);

}  // namespace ferry::sdk
