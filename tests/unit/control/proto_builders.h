// Small proto values for the coordinator's pure-logic tests (directory, collectives).
#pragma once

#include <cstdint>
#include <string>

#include "proto/coordinator.pb.h"

namespace ferry::control::testing {

inline proto::ObjectRef TestRef(const std::string& key, const std::string& ns = "ns") {
  proto::ObjectRef ref;
  ref.set_ns(ns);
  ref.set_key(key);
  return ref;
}

// Raw bytes: count = size. `incarnation` 0 leaves it unset.
inline proto::ObjectMeta TestMeta(uint64_t size, uint64_t incarnation = 0) {
  proto::ObjectMeta meta;
  meta.set_size(size);
  meta.set_count(size);
  if (incarnation != 0) meta.set_incarnation(incarnation);
  return meta;
}

}  // namespace ferry::control::testing
