// Small conversions between the store's types and the protocol's, shared by the node's files.
#pragma once

#include <string>

#include "absl/status/status.h"

#include "dataplane/store/object_store.h"
#include "proto/common.pb.h"

namespace ferry::dataplane {

inline proto::ObjectRef Ref(const std::string& ns, const std::string& key) {
  proto::ObjectRef ref;
  ref.set_ns(ns);
  ref.set_key(key);
  return ref;
}

inline void SetMeta(const StoredMeta& m, proto::ObjectMeta* out) {
  out->set_size(m.size);
  out->set_dtype(static_cast<proto::DType>(m.dtype));
  out->set_count(m.count);
  out->set_incarnation(m.incarnation);
  out->set_checksummed(m.checksummed);
  out->set_checksum(m.checksum);
}

// A Delete's answer from the coordinator's (`remote`) and the local store's (`local`): OK if the
// coordinator deleted it, or if only this node held it (never published).
inline absl::Status DeleteOutcome(const absl::Status& remote, const absl::Status& local) {
  if (remote.ok() || (remote.code() == absl::StatusCode::kNotFound && local.ok())) return absl::OkStatus();
  return remote;
}

}  // namespace ferry::dataplane
