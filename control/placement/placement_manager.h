// PlacementManager: placement with ephemeral resources (DESIGN.md "Placement"), as pure logic.
// It wires a ResourceTable (what nodes have), the Matcher (where a request fits), a LeaseTable
// (what is granted) and a WaitQueue (what waits), and keeps them consistent:
//  * every grant allocates all bundles of one alternative at once, or nothing (gang);
//  * no node is ever allocated past its capacity;
//  * a request no node can ever satisfy fails at once (FAILED_PRECONDITION naming the demand);
//    a feasible one waits, in WaitQueue's fair priority order, until its deadline
//    (then DEADLINE_EXCEEDED) or until Cancel;
//  * a dead node's leases are released whole (a gang with one bundle lost is lost) and their
//    holders are returned to be told; an expired lease likewise;
//  * after a coordinator restart, BeginRebuild opens a window in which holders re-report their
//    leases (Restore) and nothing new is granted; conflicting reports are refused, so nothing is
//    granted twice. The window closes at EndRebuild or when Advance passes its end.
//
// Time is passed in (`now`); there is no clock inside. The owner calls Advance(now) when
// NextDeadline() is reached (lease expiry, request deadlines, the rebuild's end) and delivers the
// returned events: grants to the waiting callers, failures to them, lost leases to their holders.
//
// Not thread-safe: the owner serialises every call (the coordinator, under its lock).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "control/placement/lease_table.h"
#include "control/placement/matcher.h"
#include "control/placement/placement_request.h"
#include "control/placement/resource_table.h"
#include "control/placement/wait_queue.h"

namespace ferry::control::placement {

// A waiting request was granted.
struct Grant {
  RequestId request = 0;
  Lease lease;
};
// A waiting request ended without a grant (DEADLINE_EXCEEDED, or FAILED_PRECONDITION when the
// cluster shrank so that it can never be granted).
struct RequestFailure {
  RequestId request = 0;
  std::string holder;
  absl::Status status;
};
// A lease ended without its holder releasing it (node death, expiry).
struct LostLease {
  LeaseId lease = 0;
  std::string holder;
  std::string reason;
};
// What a call changed besides its own result: the owner tells each party.
struct PlacementEvents {
  std::vector<Grant> granted;
  std::vector<RequestFailure> failed;
  std::vector<LostLease> lost;
  void Append(PlacementEvents other);
  bool empty() const { return granted.empty() && failed.empty() && lost.empty(); }
};

struct AcquireResult {
  std::optional<Lease> lease;  // granted now
  RequestId queued = 0;        // else: waiting under this id (a later Grant or RequestFailure)
  std::string wait_reason;     // why it waits
};

// A lease as its holder re-reports it after a coordinator restart.
struct LeaseReport {
  LeaseId id = 0;
  std::string holder;
  size_t alternative = 0;
  std::vector<std::pair<NodeId, ResourceMap>> bundles;
  absl::Duration ttl = absl::Seconds(30);
};

class PlacementManager {
 public:
  struct Options {
    LeaseId first_lease_id = 1;  // a restarted coordinator may start elsewhere; Restore bumps it
    size_t max_waiters = 100000;
  };
  PlacementManager() : PlacementManager(Options{}) {}
  explicit PlacementManager(Options options) : options_(options), leases_(options.first_lease_id) {}

  // Registers a node (see ResourceTable::AddNode); waiters it can serve are granted.
  [[nodiscard]] absl::StatusOr<PlacementEvents> AddNode(NodeId node, Labels labels, const ResourceMap& resources,
                                                        absl::Time now);
  // A node died or left: its leases are released whole (events.lost), then the node is removed;
  // waiters that can now never be granted fail. NOT_FOUND for an unknown node.
  [[nodiscard]] absl::StatusOr<PlacementEvents> RemoveNode(NodeId node, absl::Time now);
  // ResourceTable::SetResource, then re-evaluates the queue. `nodes` (optional) gets the nodes
  // acted on, ascending.
  [[nodiscard]] absl::StatusOr<PlacementEvents> SetResource(absl::string_view name, int64_t capacity,
                                                            const NodeSelector& selector, absl::Time now,
                                                            std::vector<NodeId>* nodes = nullptr);

  // Grants `request` now (result.lease) or queues it (result.queued). INVALID_ARGUMENT for a bad
  // request (see ValidateRequest), NOT_FOUND for an unknown resource, FAILED_PRECONDITION when
  // no alternative can ever be granted (the message names the unsatisfiable demand),
  // RESOURCE_EXHAUSTED when the queue is full. During a rebuild every valid request queues.
  [[nodiscard]] absl::StatusOr<AcquireResult> Acquire(PlacementRequest request, absl::Time now);
  // Releases `holder`'s lease and grants what it unblocks. NOT_FOUND for an unknown lease,
  // PERMISSION_DENIED for someone else's.
  [[nodiscard]] absl::StatusOr<PlacementEvents> Release(LeaseId lease, absl::string_view holder, absl::Time now);
  // Pushes the lease's expiry to now + its ttl; returns it. Errors as Release.
  [[nodiscard]] absl::StatusOr<absl::Time> Renew(LeaseId lease, absl::string_view holder, absl::Time now);
  // Withdraws a waiting request. NOT_FOUND / PERMISSION_DENIED as Release.
  [[nodiscard]] absl::StatusOr<PlacementEvents> Cancel(RequestId request, absl::string_view holder, absl::Time now);

  // Ends the rebuild window if `now` passed it, expires leases and waiting requests due at
  // `now`, and grants what that unblocks.
  PlacementEvents Advance(absl::Time now);
  // Walks the queue in order and grants every waiter the fairness policy lets through. The
  // mutating calls above do this themselves; exposed for owners that batch changes.
  PlacementEvents Reevaluate(absl::Time now);
  // The earliest time Advance has work; InfiniteFuture if none.
  absl::Time NextDeadline() const;

  // Opens the rebuild window until `until` (> now). FAILED_PRECONDITION if one is open.
  [[nodiscard]] absl::Status BeginRebuild(absl::Time until, absl::Time now);
  // Re-registers a lease its holder reports. FAILED_PRECONDITION outside a rebuild (the lease is
  // lost), INVALID_ARGUMENT for a malformed report, NOT_FOUND for an unknown node or resource,
  // ALREADY_EXISTS for a lease id restored before, ABORTED if it would over-allocate a node (it
  // conflicts with leases restored before it). Nothing changes on error.
  [[nodiscard]] absl::Status Restore(const LeaseReport& report, absl::Time now);
  // Closes the rebuild window and serves the queue (requests that can never be granted fail).
  PlacementEvents EndRebuild(absl::Time now);
  bool rebuilding() const { return rebuilding_; }
  // While rebuilding: when the window closes at the latest.
  absl::Time rebuild_until() const { return rebuild_until_; }

  std::vector<NodeResourcesView> ClusterResources() const { return table_.Snapshot(); }
  const ResourceTable& table() const { return table_; }
  const LeaseTable& leases() const { return leases_; }
  const WaitQueue& queue() const { return queue_; }
  // OK unless a bookkeeping invariant broke (a release of more than was allocated): a bug.
  const absl::Status& internal_error() const { return internal_error_; }

 private:
  // Grants the first alternative that fits now; else nullopt and `why` of the first alternative.
  std::optional<Lease> TryGrant(const PlacementRequest& request, const ResolvedRequest& resolved, absl::Time now,
                                std::string* why);
  // Allocates every bundle of `lease` at `nodes`, all or none.
  [[nodiscard]] absl::Status AllocateAll(const std::vector<LeaseBundle>& bundles);
  // Why no alternative can ever be granted (each alternative's reason), or nullopt.
  std::optional<std::string> ProveNever(const PlacementRequest& request, const ResolvedRequest& resolved) const;
  // Returns a removed lease's amounts to the table.
  void ReleaseAmounts(const Lease& lease);
  // Removes lease `id` (whoever holds it), releases it and records it lost.
  void Drop(LeaseId id, const std::string& reason, PlacementEvents& events);
  [[nodiscard]] absl::StatusOr<Lease> ResolveReport(const LeaseReport& report, absl::Time now);
  void NoteInternal(const absl::Status& status);

  const Options options_;
  ResourceTable table_;
  LeaseTable leases_;
  WaitQueue queue_;
  RequestId next_request_ = 1;
  bool rebuilding_ = false;
  absl::Time rebuild_until_ = absl::InfinitePast();
  bool capacity_shrunk_ = false;  // the next Reevaluate checks waiters for "never"
  absl::Status internal_error_;
};

}  // namespace ferry::control::placement
