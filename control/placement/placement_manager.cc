#include "control/placement/placement_manager.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace ferry::control::placement {
namespace {

std::vector<ResourceId> LeaseResources(const Lease& lease) {
  std::vector<ResourceId> out;
  for (const LeaseBundle& b : lease.bundles) {
    for (const Demand& d : b.demands) out.push_back(d.resource);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

template <typename T>
void Move(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

}  // namespace

void PlacementEvents::Append(PlacementEvents other) {
  Move(granted, other.granted);
  Move(failed, other.failed);
  Move(lost, other.lost);
}

absl::StatusOr<PlacementEvents> PlacementManager::AddNode(NodeId node, Labels labels, const ResourceMap& resources,
                                                          absl::Time now) {
  FERRY_RETURN_IF_ERROR(table_.AddNode(node, std::move(labels), resources));
  return Reevaluate(now);
}

absl::StatusOr<PlacementEvents> PlacementManager::RemoveNode(NodeId node, absl::Time now) {
  if (!table_.HasNode(node)) return absl::NotFoundError(absl::StrCat("node ", node, " is not registered"));
  PlacementEvents events;
  for (LeaseId id : leases_.OnNode(node)) Drop(id, absl::StrCat("node ", node, " died"), events);
  absl::Status removed = table_.RemoveNode(node);
  if (!removed.ok()) {
    NoteInternal(removed);
    return removed;
  }
  capacity_shrunk_ = true;
  events.Append(Reevaluate(now));
  return events;
}

absl::StatusOr<PlacementEvents> PlacementManager::SetResource(absl::string_view name, int64_t capacity,
                                                              const NodeSelector& selector, absl::Time now,
                                                              std::vector<NodeId>* nodes) {
  FERRY_ASSIGN_OR_RETURN(std::vector<NodeId> acted, table_.SetResource(name, capacity, selector));
  if (nodes != nullptr) *nodes = std::move(acted);
  capacity_shrunk_ = true;  // it may have shrunk: check waiters for "never"
  return Reevaluate(now);
}

absl::StatusOr<AcquireResult> PlacementManager::Acquire(PlacementRequest request, absl::Time now) {
  FERRY_RETURN_IF_ERROR(ValidateRequest(request, now));
  FERRY_ASSIGN_OR_RETURN(ResolvedRequest resolved, ResolveRequest(request, table_, rebuilding_));
  AcquireResult result;
  if (rebuilding_) {
    result.wait_reason = "placement state is being rebuilt after a coordinator restart";
  } else if (queue_.Blocks(resolved.resources, request.priority)) {
    result.wait_reason = absl::StrCat("queued behind an earlier request of priority >= ", request.priority,
                                      " for the same resources");
  } else {
    result.lease = TryGrant(request, resolved, now, &result.wait_reason);
    if (result.lease) return result;
  }
  if (!rebuilding_) {
    if (std::optional<std::string> never = ProveNever(request, resolved)) {
      return absl::FailedPreconditionError(absl::StrCat("placement can never be granted: ", *never));
    }
  }
  if (queue_.size() >= options_.max_waiters) {
    return absl::ResourceExhaustedError(absl::StrCat("the placement queue is full (", options_.max_waiters,
                                                     " waiting requests); not granted now: ", result.wait_reason));
  }
  result.queued = next_request_++;
  queue_.Push(Waiter{result.queued, std::move(request), std::move(resolved), result.wait_reason});
  return result;
}

absl::StatusOr<PlacementEvents> PlacementManager::Release(LeaseId lease, absl::string_view holder, absl::Time now) {
  FERRY_ASSIGN_OR_RETURN(Lease removed, leases_.Remove(lease, holder));
  ReleaseAmounts(removed);
  if (!queue_.Wants(LeaseResources(removed))) return PlacementEvents{};
  return Reevaluate(now);
}

absl::StatusOr<absl::Time> PlacementManager::Renew(LeaseId lease, absl::string_view holder, absl::Time now) {
  return leases_.Renew(lease, holder, now);
}

absl::StatusOr<PlacementEvents> PlacementManager::Cancel(RequestId request, absl::string_view holder, absl::Time now) {
  const Waiter* w = queue_.Find(request);
  if (w == nullptr) return absl::NotFoundError(absl::StrCat("request ", request, " is not waiting"));
  if (w->request.holder != holder) {
    return absl::PermissionDeniedError(
        absl::StrCat("request ", request, " belongs to '", w->request.holder, "', not to '", holder, "'"));
  }
  queue_.Remove(request);
  return Reevaluate(now);  // it may have held back later requests
}

PlacementEvents PlacementManager::Advance(absl::Time now) {
  PlacementEvents events;
  if (rebuilding_ && now >= rebuild_until_) events.Append(EndRebuild(now));
  const std::vector<LeaseId> expired = leases_.Expired(now);
  for (LeaseId id : expired) Drop(id, "lease expired (not renewed)", events);
  const std::vector<RequestId> overdue = queue_.PopExpired(now);
  for (RequestId id : overdue) {
    std::optional<Waiter> w = queue_.Remove(id);
    events.failed.push_back({id, w->request.holder,
                             absl::DeadlineExceededError(absl::StrCat("placement request ", id,
                                                                      " reached its deadline: ", w->wait_reason))});
  }
  // Freed amounts serve waiters; a waiter that left may have held later ones back.
  if (!expired.empty() || !overdue.empty()) events.Append(Reevaluate(now));
  return events;
}

PlacementEvents PlacementManager::Reevaluate(absl::Time now) {
  PlacementEvents events;
  if (rebuilding_ || queue_.empty()) return events;
  const bool check_never = capacity_shrunk_;
  capacity_shrunk_ = false;
  absl::flat_hash_set<ResourceId> reserved;  // named by an earlier waiter that still waits
  for (RequestId id : queue_.InOrder()) {
    Waiter* w = queue_.Find(id);
    const bool held = std::any_of(w->resolved.resources.begin(), w->resolved.resources.end(),
                                  [&](ResourceId r) { return reserved.contains(r); });
    std::optional<std::string> never;
    if (check_never) never = ProveNever(w->request, w->resolved);
    if (never || w->request.deadline <= now) {
      absl::Status status =
          never ? absl::FailedPreconditionError(absl::StrCat("placement can never be granted: ", *never))
                : absl::DeadlineExceededError(absl::StrCat("placement request ", id, " reached its deadline"));
      events.failed.push_back({id, w->request.holder, std::move(status)});
      queue_.Remove(id);
      continue;
    }
    if (!held) {
      if (std::optional<Lease> lease = TryGrant(w->request, w->resolved, now, &w->wait_reason)) {
        events.granted.push_back({id, std::move(*lease)});
        queue_.Remove(id);
        continue;
      }
    }
    reserved.insert(w->resolved.resources.begin(), w->resolved.resources.end());
  }
  return events;
}

absl::Time PlacementManager::NextDeadline() const {
  absl::Time next = std::min(leases_.NextExpiry(), queue_.NextDeadline());
  if (rebuilding_) next = std::min(next, rebuild_until_);
  return next;
}

absl::Status PlacementManager::BeginRebuild(absl::Time until, absl::Time now) {
  if (rebuilding_) return absl::FailedPreconditionError("a placement rebuild is already in progress");
  if (until <= now) {
    return absl::InvalidArgumentError(
        absl::StrCat("rebuild end ", absl::FormatTime(until), " is not after now (", absl::FormatTime(now), ")"));
  }
  rebuilding_ = true;
  rebuild_until_ = until;
  return absl::OkStatus();
}

absl::Status PlacementManager::Restore(const LeaseReport& report, absl::Time now) {
  if (!rebuilding_) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", report.id, " cannot be restored: no rebuild in progress (the lease is lost)"));
  }
  FERRY_ASSIGN_OR_RETURN(Lease lease, ResolveReport(report, now));
  if (const Lease* existing = leases_.Find(lease.id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("lease ", lease.id, " was already restored (held by '", existing->holder, "')"));
  }
  absl::Status allocated = AllocateAll(lease.bundles);
  if (!allocated.ok()) {
    return absl::AbortedError(
        absl::StrCat("lease ", lease.id, " conflicts with leases restored before it: ", allocated.message()));
  }
  absl::Status inserted = leases_.Insert(std::move(lease));
  if (!inserted.ok()) NoteInternal(inserted);
  return inserted;
}

absl::StatusOr<Lease> PlacementManager::ResolveReport(const LeaseReport& report, absl::Time now) {
  if (report.id == 0) return absl::InvalidArgumentError("lease report has id 0");
  if (report.holder.empty()) return absl::InvalidArgumentError(absl::StrCat("lease ", report.id, " has no holder"));
  if (report.bundles.empty()) return absl::InvalidArgumentError(absl::StrCat("lease ", report.id, " has no bundles"));
  if (report.ttl <= absl::ZeroDuration() || report.ttl == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("lease ", report.id, " has a ttl that is not positive and finite"));
  }
  Lease lease{report.id, report.holder, report.alternative, {}, report.ttl, now + report.ttl};
  for (const auto& [node, amounts] : report.bundles) {
    if (!table_.HasNode(node)) {
      return absl::NotFoundError(absl::StrCat("lease ", report.id, " names node ", node, ", which is not registered"));
    }
    LeaseBundle bundle{node, {}};
    for (const auto& [name, amount] : amounts) {
      const std::optional<ResourceId> id = table_.Find(name);
      if (!id || table_.Capacity(node, *id) == 0) {
        return absl::NotFoundError(absl::StrCat("lease ", report.id, " holds '", name, "' on node ", node,
                                                ", which that node does not have"));
      }
      if (amount <= 0 || amount > kMaxAmount) {
        return absl::InvalidArgumentError(
            absl::StrCat("lease ", report.id, " holds ", amount, " of '", name, "': not a positive amount"));
      }
      bundle.demands.push_back({*id, amount});
    }
    lease.bundles.push_back(std::move(bundle));
  }
  return lease;
}

PlacementEvents PlacementManager::EndRebuild(absl::Time now) {
  if (!rebuilding_) return {};
  rebuilding_ = false;
  capacity_shrunk_ = true;  // requests queued during the rebuild were never checked
  return Reevaluate(now);
}

std::optional<Lease> PlacementManager::TryGrant(const PlacementRequest& request, const ResolvedRequest& resolved,
                                                absl::Time now, std::string* why) {
  const Matcher matcher(table_, request.scoring);
  for (size_t i = 0; i < resolved.alternatives.size(); ++i) {
    const ResolvedAlternative& alt = resolved.alternatives[i];
    MatchResult match = matcher.Match(alt, Basis::kFree);
    if (!match.found) {
      if (i == 0) *why = std::move(match.why);
      continue;
    }
    Lease lease{leases_.NewId(), request.holder, i, {}, request.lease_ttl, now + request.lease_ttl};
    for (size_t b = 0; b < alt.bundles.size(); ++b) lease.bundles.push_back({match.nodes[b], alt.bundles[b].demands});
    absl::Status allocated = AllocateAll(lease.bundles);
    absl::Status inserted = allocated.ok() ? leases_.Insert(lease) : allocated;
    if (!inserted.ok()) {  // the matcher promised a fit: a bug
      NoteInternal(inserted);
      return std::nullopt;
    }
    return lease;
  }
  return std::nullopt;
}

absl::Status PlacementManager::AllocateAll(const std::vector<LeaseBundle>& bundles) {
  for (size_t i = 0; i < bundles.size(); ++i) {
    absl::Status s = table_.Allocate(bundles[i].node, bundles[i].demands);
    if (s.ok()) continue;
    for (size_t j = 0; j < i; ++j) NoteInternal(table_.Release(bundles[j].node, bundles[j].demands));
    return s;
  }
  return absl::OkStatus();
}

std::optional<std::string> PlacementManager::ProveNever(const PlacementRequest& request,
                                                        const ResolvedRequest& resolved) const {
  const Matcher matcher(table_, request.scoring);
  std::vector<std::string> reasons;
  for (size_t i = 0; i < resolved.alternatives.size(); ++i) {
    std::optional<std::string> why = matcher.ProveNever(resolved.alternatives[i]);
    if (!why) return std::nullopt;
    reasons.push_back(resolved.alternatives.size() == 1 ? *why : absl::StrCat("alternative ", i, ": ", *why));
  }
  return absl::StrJoin(reasons, "; ");
}

void PlacementManager::ReleaseAmounts(const Lease& lease) {
  for (const LeaseBundle& b : lease.bundles) NoteInternal(table_.Release(b.node, b.demands));
}

void PlacementManager::Drop(LeaseId id, const std::string& reason, PlacementEvents& events) {
  absl::StatusOr<Lease> lease = leases_.RemoveAny(id);
  if (!lease.ok()) {
    NoteInternal(lease.status());
    return;
  }
  ReleaseAmounts(*lease);
  events.lost.push_back({id, lease->holder, reason});
}

void PlacementManager::NoteInternal(const absl::Status& status) {
  if (!status.ok() && internal_error_.ok()) internal_error_ = status;
}

}  // namespace ferry::control::placement
