// The NodeInfo a coordinator would send for a node on the in-process transport (whose data-plane
// address is the node id), for the sidecar unit tests that play the coordinator.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "proto/common.pb.h"

namespace ferry::dataplane::testing {

inline proto::NodeInfo InprocNodeInfo(uint64_t id) {
  proto::NodeInfo n;
  n.set_node_id(id);
  n.set_name(absl::StrCat("n", id));
  n.set_dp_address(std::to_string(id));   // inproc addresses are the node id
  n.set_alive(true);
  return n;
}

}  // namespace ferry::dataplane::testing
