#include "control/membership_delta.h"

#include "absl/strings/str_cat.h"

namespace ferry::control {

proto::CoordMessage MembershipSnapshot(uint64_t epoch, const std::vector<const proto::NodeInfo*>& live) {
  proto::CoordMessage msg;
  proto::Membership* m = msg.mutable_membership();
  m->set_epoch(epoch);
  m->set_full(true);
  m->mutable_nodes()->Reserve(static_cast<int>(live.size()));
  for (const proto::NodeInfo* n : live) *m->add_nodes() = *n;
  return msg;
}

proto::CoordMessage MembershipDelta(uint64_t epoch, const std::vector<proto::NodeInfo>& added,
                                    const std::vector<uint64_t>& removed) {
  proto::CoordMessage msg;
  proto::Membership* m = msg.mutable_membership();
  m->set_epoch(epoch);
  for (const proto::NodeInfo& n : added) *m->add_added() = n;
  for (uint64_t id : removed) m->add_removed(id);
  return msg;
}

bool IsSnapshot(const proto::Membership& m) { return m.full() || m.nodes_size() > 0; }

absl::Status ApplyMembership(const proto::Membership& m, uint64_t self, uint64_t* epoch,
                             std::map<uint64_t, std::string>* peers) {
  if (IsSnapshot(m)) {
    if (*epoch != 0 && m.epoch() <= *epoch) return absl::OkStatus();
    peers->clear();
    for (const proto::NodeInfo& n : m.nodes()) {
      if (n.node_id() != self && n.alive()) (*peers)[n.node_id()] = n.dp_address();
    }
    *epoch = m.epoch();
    return absl::OkStatus();
  }
  if (*epoch == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("membership delta at epoch ", m.epoch(), " before any snapshot in this session"));
  }
  if (m.epoch() != *epoch + 1) {
    return absl::FailedPreconditionError(absl::StrCat("membership delta at epoch ", m.epoch(),
                                                      " after epoch ", *epoch, ": deltas are missing"));
  }
  for (uint64_t id : m.removed()) peers->erase(id);
  for (const proto::NodeInfo& n : m.added()) {
    if (n.node_id() != self) (*peers)[n.node_id()] = n.dp_address();
  }
  *epoch = m.epoch();
  return absl::OkStatus();
}

}  // namespace ferry::control
