// LeaseTable: the grants that are out. A lease has an id, a holder (client id), the nodes and
// amounts of every bundle it was granted, and an expiry its holder pushes out with Renew.
//
// The table only keeps books on leases; allocating and releasing the amounts in the
// ResourceTable is the PlacementManager's job (it does both in one step).
//
// Pure logic, no locking: the owner serialises calls.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/cluster/deadline_queue.h"
#include "control/placement/resource_table.h"

namespace ferry::control::placement {

using LeaseId = uint64_t;  // 0 means "no lease"

struct LeaseBundle {
  NodeId node = 0;
  std::vector<Demand> demands;
};

struct Lease {
  LeaseId id = 0;
  std::string holder;
  size_t alternative = 0;             // which alternative of the request was granted
  std::vector<LeaseBundle> bundles;   // in the request's bundle order
  absl::Duration ttl;                 // Renew moves expiry to now + ttl
  absl::Time expiry;
};

class LeaseTable {
 public:
  explicit LeaseTable(LeaseId first_id = 1) : next_id_(first_id == 0 ? 1 : first_id) {}

  // A fresh id, never one in the table or handed out before (ids restored by Insert included).
  LeaseId NewId();
  // Adds `lease` (its id from NewId, or a restored one). ALREADY_EXISTS if the id is taken.
  [[nodiscard]] absl::Status Insert(Lease lease);
  // Removes and returns lease `id`. NOT_FOUND if absent; PERMISSION_DENIED (nothing removed)
  // if `holder` is not its holder.
  [[nodiscard]] absl::StatusOr<Lease> Remove(LeaseId id, absl::string_view holder);
  // Removes lease `id` whoever holds it (expiry, node death). NOT_FOUND if absent.
  [[nodiscard]] absl::StatusOr<Lease> RemoveAny(LeaseId id);
  // Moves `id`'s expiry to now + ttl and returns it. NOT_FOUND / PERMISSION_DENIED as Remove.
  [[nodiscard]] absl::StatusOr<absl::Time> Renew(LeaseId id, absl::string_view holder, absl::Time now);

  const Lease* Find(LeaseId id) const;
  // Ids of the leases with a bundle on `node`, ascending.
  std::vector<LeaseId> OnNode(NodeId node) const;
  // Ids of the leases whose expiry is at or before `now`, earliest first (not removed).
  std::vector<LeaseId> Expired(absl::Time now) const;
  // The earliest expiry; InfiniteFuture when empty.
  absl::Time NextExpiry() const { return expiry_.Next(); }

  size_t size() const { return leases_.size(); }
  const absl::flat_hash_map<LeaseId, Lease>& leases() const { return leases_; }

 private:
  [[nodiscard]] absl::StatusOr<Lease*> Owned(LeaseId id, absl::string_view holder);

  LeaseId next_id_;
  absl::flat_hash_map<LeaseId, Lease> leases_;
  absl::flat_hash_map<NodeId, absl::flat_hash_set<LeaseId>> by_node_;
  DeadlineQueue<LeaseId> expiry_;
};

}  // namespace ferry::control::placement
