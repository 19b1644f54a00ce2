// The coordinator's static groups (proto/group.proto): names, members in rank order, and
// whether a member's death has revoked them. Pure logic over a ClusterView; called under the
// coordinator's lock (it has no lock of its own).
//
// Ranks: members on one host are adjacent (a ring then crosses each host boundary once): the
// host is the node's "host" label, else its own name; hosts keep the order of their first
// member in the request, and members of a host the order given. With "rack" labels, the hosts
// of a rack are adjacent too (the first member's rack first, then racks in order of first
// appearance; members without a rack last), so a ring crosses the spine once each way.
// A revoked group stays listed (with why) until it is deleted, so callers learn what happened
// to it; its name cannot be reused before that.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/cluster/cluster_view.h"
#include "core/ids.h"
#include "proto/group.pb.h"

namespace ferry::control {

class GroupTable {
 public:
  static constexpr int kMaxMembers = 1024;
  static constexpr size_t kMaxGroups = 4096;

  // INVALID_ARGUMENT for a bad name, both or neither member lists, fewer than two or more than
  // kMaxMembers members, a duplicate; NOT_FOUND for an unknown node or name; FAILED_PRECONDITION
  // for a dead member; ALREADY_EXISTS for a name in use; RESOURCE_EXHAUSTED past kMaxGroups.
  absl::StatusOr<proto::GroupInfo> Create(const proto::CreateGroupRequest& req, const ClusterView& cluster);
  // NOT_FOUND for an unknown group. Returns the group as it was.
  absl::StatusOr<proto::GroupInfo> Remove(const std::string& name);
  proto::ListGroupsReply List() const;
  // The group, or NOT_FOUND; FAILED_PRECONDITION (with why) if it is revoked.
  absl::StatusOr<const proto::GroupInfo*> Usable(const std::string& name) const;
  // Revokes every live group with `node` among its members; their names.
  std::vector<std::string> OnNodeDeath(NodeId node, const std::string& why);
  // Revokes every live group made from lease `lease` (GroupInfo.lease_id); their names.
  std::vector<std::string> OnLeaseEnded(uint64_t lease, const std::string& why);
  // A collective on `name` completed.
  void CountCollective(const std::string& name);

 private:
  std::map<std::string, proto::GroupInfo> groups_;
  uint64_t next_id_ = 1;
};

}  // namespace ferry::control
