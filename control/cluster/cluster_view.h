// What the directory glue and the collectives may read of the cluster: which nodes are alive
// and what they registered with. Implemented by Cluster; tests implement it with a fake.
// Read under the coordinator's lock, like everything it describes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ids.h"
#include "proto/common.pb.h"

namespace ferry::control {

class ClusterView {
 public:
  virtual ~ClusterView() = default;
  virtual bool Alive(NodeId node) const = 0;
  // Every live node, in no particular order.
  virtual std::vector<NodeId> LiveNodes() const = 0;
  // The node as registered (with its latest heartbeat figures), dead ones included; null if
  // the id never registered.
  virtual const proto::NodeInfo* Info(NodeId node) const = 0;
};

}  // namespace ferry::control
