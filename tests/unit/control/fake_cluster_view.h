// A ClusterView for pure-logic tests of the collectives: nodes the test adds and kills.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "control/cluster/cluster_view.h"

namespace ferry::control {

class FakeClusterView final : public ClusterView {
 public:
  void Add(NodeId id) {
    proto::NodeInfo& info = nodes_[id];
    info.set_node_id(id);
    info.set_name(absl::StrCat("n", id));
    info.set_dp_address(absl::StrCat("addr-", id));
    info.set_alive(true);
  }
  void Kill(NodeId id) { nodes_[id].set_alive(false); }

  bool Alive(NodeId node) const override {
    auto it = nodes_.find(node);
    return it != nodes_.end() && it->second.alive();
  }
  std::vector<NodeId> LiveNodes() const override {
    std::vector<NodeId> out;
    for (const auto& [id, info] : nodes_) {
      if (info.alive()) out.push_back(id);
    }
    return out;
  }
  const proto::NodeInfo* Info(NodeId node) const override {
    auto it = nodes_.find(node);
    return it == nodes_.end() ? nullptr : &it->second;
  }

 private:
  std::map<NodeId, proto::NodeInfo> nodes_;
};

}  // namespace ferry::control
