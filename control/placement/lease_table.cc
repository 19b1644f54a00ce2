#include "control/placement/lease_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ferry::control::placement {

LeaseId LeaseTable::NewId() {
  while (leases_.contains(next_id_)) ++next_id_;
  return next_id_++;
}

absl::Status LeaseTable::Insert(Lease lease) {
  if (lease.id == 0) return absl::InvalidArgumentError("lease id 0 is reserved for \"no lease\"");
  if (leases_.contains(lease.id)) return absl::AlreadyExistsError(absl::StrCat("lease ", lease.id, " already exists"));
  // A restored id from a previous coordinator life: new ids go above it.
  if (lease.id >= next_id_) next_id_ = lease.id + 1;
  for (const LeaseBundle& b : lease.bundles) by_node_[b.node].insert(lease.id);
  expiry_.Set(lease.id, lease.expiry);
  const LeaseId id = lease.id;
  leases_.emplace(id, std::move(lease));
  return absl::OkStatus();
}

absl::StatusOr<Lease*> LeaseTable::Owned(LeaseId id, absl::string_view holder) {
  auto it = leases_.find(id);
  if (it == leases_.end()) {
    return absl::NotFoundError(absl::StrCat("lease ", id, " not found (released, expired, or its node died)"));
  }
  if (it->second.holder != holder) {
    return absl::PermissionDeniedError(
        absl::StrCat("lease ", id, " is held by '", it->second.holder, "', not by '", holder, "'"));
  }
  return &it->second;
}

absl::StatusOr<Lease> LeaseTable::Remove(LeaseId id, absl::string_view holder) {
  absl::StatusOr<Lease*> lease = Owned(id, holder);
  if (!lease.ok()) return lease.status();
  return RemoveAny(id);
}

absl::StatusOr<Lease> LeaseTable::RemoveAny(LeaseId id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return absl::NotFoundError(absl::StrCat("lease ", id, " not found"));
  Lease lease = std::move(it->second);
  leases_.erase(it);
  expiry_.Erase(id);
  for (const LeaseBundle& b : lease.bundles) {
    auto n = by_node_.find(b.node);
    if (n == by_node_.end()) continue;  // two bundles on one node: erased already
    n->second.erase(id);
    if (n->second.empty()) by_node_.erase(n);
  }
  return lease;
}

absl::StatusOr<absl::Time> LeaseTable::Renew(LeaseId id, absl::string_view holder, absl::Time now) {
  absl::StatusOr<Lease*> lease = Owned(id, holder);
  if (!lease.ok()) return lease.status();
  (*lease)->expiry = now + (*lease)->ttl;
  expiry_.Set(id, (*lease)->expiry);
  return (*lease)->expiry;
}

const Lease* LeaseTable::Find(LeaseId id) const {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : &it->second;
}

std::vector<LeaseId> LeaseTable::OnNode(NodeId node) const {
  std::vector<LeaseId> out;
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return out;
  out.assign(it->second.begin(), it->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<LeaseId> LeaseTable::Expired(absl::Time now) const {
  if (expiry_.Next() > now) return {};  // the common case, O(1)
  // Something expired (rare): collect the due leases in deadline order without touching expiry_.
  DeadlineQueue<LeaseId> copy;
  for (const auto& [id, lease] : leases_) {
    if (lease.expiry <= now) copy.Set(id, lease.expiry);
  }
  return copy.PopExpired(now);
}

}  // namespace ferry::control::placement
