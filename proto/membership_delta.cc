#include "proto/membership_delta.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ferry::proto {

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

proto::Membership MergeDeltas(const std::vector<const proto::Membership*>& run) {
  proto::Membership out;
  if (run.empty()) return out;
  out.set_first_epoch(run.front()->first_epoch() != 0 ? run.front()->first_epoch() : run.front()->epoch());
  out.set_epoch(run.back()->epoch());
  std::map<uint64_t, const proto::NodeInfo*> added;
  std::vector<uint64_t> removed;   // in order, each at most once
  absl::flat_hash_set<uint64_t> removed_set;
  for (const proto::Membership* d : run) {
    for (uint64_t id : d->removed()) {
      if (added.erase(id) > 0 && !removed_set.contains(id)) continue;   // joined within the run: never seen
      if (removed_set.insert(id).second) removed.push_back(id);
    }
    for (const proto::NodeInfo& n : d->added()) added[n.node_id()] = &n;
  }
  for (uint64_t id : removed) out.add_removed(id);
  for (const auto& [id, n] : added) *out.add_added() = *n;
  return out;
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
  const uint64_t first = m.first_epoch() != 0 ? m.first_epoch() : m.epoch();
  if (first != *epoch + 1 || m.epoch() < first) {
    return absl::FailedPreconditionError(absl::StrCat("membership delta at epoch ", first,
                                                      " after epoch ", *epoch, ": deltas are missing"));
  }
  for (uint64_t id : m.removed()) peers->erase(id);
  for (const proto::NodeInfo& n : m.added()) {
    if (n.node_id() != self) (*peers)[n.node_id()] = n.dp_address();
  }
  *epoch = m.epoch();
  return absl::OkStatus();
}

}  // namespace ferry::proto
