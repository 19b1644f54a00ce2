#include "control/groups/group_table.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "control/cluster/locality.h"
#include "core/names.h"

namespace ferry::control {

absl::StatusOr<proto::GroupInfo> GroupTable::Create(const proto::CreateGroupRequest& req, const ClusterView& cluster) {
  if (absl::Status s = ValidateNamespace(req.name()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("group name: ", s.message()));
  }
  const bool by_id = req.node_ids_size() > 0;
  const bool by_name = req.node_names_size() > 0;
  if (by_id == by_name) {
    return absl::InvalidArgumentError("name the group's members by node id or by node name (one list, not both)");
  }
  const int count = by_id ? req.node_ids_size() : req.node_names_size();
  if (count < 2 || count > kMaxMembers) {
    return absl::InvalidArgumentError(absl::StrCat("a group has 2..", kMaxMembers, " members, not ", count));
  }
  if (groups_.contains(req.name())) {
    return absl::AlreadyExistsError(absl::StrCat("group '", req.name(), "' exists (delete it first)"));
  }
  if (groups_.size() >= kMaxGroups) {
    return absl::ResourceExhaustedError(absl::StrCat("the coordinator holds ", kMaxGroups, " groups already"));
  }
  // Resolve members to live nodes, in the order given.
  std::map<std::string, NodeId> by_node_name;
  if (by_name) {
    for (NodeId id : cluster.LiveNodes()) {
      if (const proto::NodeInfo* info = cluster.Info(id); info != nullptr) by_node_name[info->name()] = id;
    }
  }
  std::vector<const proto::NodeInfo*> members;
  std::set<NodeId> seen;
  for (int i = 0; i < count; ++i) {
    NodeId id = 0;
    if (by_id) {
      id = req.node_ids(i);
      if (cluster.Info(id) == nullptr) return absl::NotFoundError(absl::StrCat("no node with id ", id));
    } else {
      auto it = by_node_name.find(req.node_names(i));
      if (it == by_node_name.end()) {
        return absl::NotFoundError(absl::StrCat("no live node named '", req.node_names(i), "'"));
      }
      id = it->second;
    }
    const proto::NodeInfo* info = cluster.Info(id);
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("node ", info->name(), " (", id, ") is named twice"));
    }
    if (!cluster.Alive(id)) {
      return absl::FailedPreconditionError(absl::StrCat("node ", info->name(), " (", id, ") is not alive"));
    }
    members.push_back(info);
  }
  // Ranks: the first member's host, then its rack, then rack by rack (control/cluster/locality.h):
  // hosts in order of first appearance within each, members of a host adjacent, so a ring
  // crosses each host boundary and the spine as few times as it can.
  std::vector<NodeId> given;
  std::map<NodeId, const proto::NodeInfo*> info_of;
  for (const proto::NodeInfo* info : members) {
    given.push_back(info->node_id());
    info_of[info->node_id()] = info;
  }
  const std::vector<NodeId> ranked =
      OrderByLocality(given, given.front(), [&info_of](NodeId n) { return info_of.at(n); });
  proto::GroupInfo g;
  g.set_name(req.name());
  g.set_group_id(next_id_++);
  g.set_lease_id(req.lease_id());
  for (NodeId id : ranked) {
    const proto::NodeInfo* info = info_of.at(id);
    proto::GroupMember* m = g.add_members();
    m->set_rank(static_cast<uint32_t>(g.members_size() - 1));
    m->set_node_id(info->node_id());
    m->set_name(info->name());
    m->set_host(std::string(HostOf(*info)));
  }
  groups_[req.name()] = g;
  return g;
}

absl::StatusOr<proto::GroupInfo> GroupTable::Remove(const std::string& name) {
  auto it = groups_.find(name);
  if (it == groups_.end()) return absl::NotFoundError(absl::StrCat("no group named '", name, "'"));
  proto::GroupInfo g = std::move(it->second);
  groups_.erase(it);
  return g;
}

proto::ListGroupsReply GroupTable::List() const {
  proto::ListGroupsReply out;
  for (const auto& [name, g] : groups_) *out.add_groups() = g;
  return out;
}

absl::StatusOr<const proto::GroupInfo*> GroupTable::Usable(const std::string& name) const {
  auto it = groups_.find(name);
  if (it == groups_.end()) return absl::NotFoundError(absl::StrCat("no group named '", name, "'"));
  if (it->second.revoked()) {
    return absl::FailedPreconditionError(
        absl::StrCat("group '", name, "' is revoked: ", it->second.revoked_why(), " (delete it and create it again)"));
  }
  return &it->second;
}

std::vector<std::string> GroupTable::OnNodeDeath(NodeId node, const std::string& why) {
  std::vector<std::string> revoked;
  for (auto& [name, g] : groups_) {
    if (g.revoked()) continue;
    for (const proto::GroupMember& m : g.members()) {
      if (m.node_id() != node) continue;
      g.set_revoked(true);
      g.set_revoked_why(absl::StrCat("member ", m.name(), " (rank ", m.rank(), ", node ", node, ") died: ", why));
      revoked.push_back(name);
      break;
    }
  }
  return revoked;
}

std::vector<std::string> GroupTable::OnLeaseEnded(uint64_t lease, const std::string& why) {
  std::vector<std::string> revoked;
  if (lease == 0) return revoked;
  for (auto& [name, g] : groups_) {
    if (g.revoked() || g.lease_id() != lease) continue;
    g.set_revoked(true);
    g.set_revoked_why(absl::StrCat("the lease it was made from ended: ", why));
    revoked.push_back(name);
  }
  return revoked;
}

void GroupTable::CountCollective(const std::string& name) {
  if (auto it = groups_.find(name); it != groups_.end()) it->second.set_collectives(it->second.collectives() + 1);
}

}  // namespace ferry::control
