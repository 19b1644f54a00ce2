// WaitQueue: placement requests that could not be granted yet, in service order: higher
// priority first, then arrival order.
//
// Fairness policy (no starvation by backfill): a waiting request reserves the resources it
// names against every request behind it. While it waits, a later request of the same or lower
// priority that names any of those resources waits behind it, even if it would fit now; a
// later request whose resources are disjoint from every earlier waiter's may be granted past it
// (that cannot delay the earlier one). So a large gang at the head is not starved by a stream of
// small requests for the same resources, and unrelated work still flows. A request of higher
// priority is ahead in the order and is not held back by lower ones.
//
// Pure logic, no locking: the owner serialises calls.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "control/cluster/deadline_queue.h"
#include "control/placement/placement_request.h"

namespace ferry::control::placement {

using RequestId = uint64_t;

struct Waiter {
  RequestId id = 0;
  PlacementRequest request;
  ResolvedRequest resolved;
  std::string wait_reason;  // why it was not granted when last tried
};

class WaitQueue {
 public:
  // Adds `waiter` behind every waiter of its priority or higher.
  void Push(Waiter waiter);
  // Removes and returns waiter `id` (nullopt if absent).
  std::optional<Waiter> Remove(RequestId id);
  Waiter* Find(RequestId id);

  // True if a waiter of priority >= `priority` names one of `resources` (sorted): a new request
  // for them must queue behind it (see the fairness policy above).
  bool Blocks(const std::vector<ResourceId>& resources, int32_t priority) const;
  // True if some waiter names one of `resources` (sorted): only then can releasing them help.
  bool Wants(const std::vector<ResourceId>& resources) const;

  // Waiter ids in service order.
  std::vector<RequestId> InOrder() const;
  // Ids of the waiters whose deadline is at or before `now`, removed from the deadline index
  // (the caller removes them with Remove).
  std::vector<RequestId> PopExpired(absl::Time now) { return deadlines_.PopExpired(now); }
  // The earliest deadline; InfiniteFuture when empty.
  absl::Time NextDeadline() const { return deadlines_.Next(); }

  size_t size() const { return waiters_.size(); }
  bool empty() const { return waiters_.empty(); }

 private:
  using OrderKey = std::tuple<int64_t, uint64_t, RequestId>;  // (-priority, arrival, id)

  struct Entry {
    Waiter waiter;
    OrderKey key;
  };

  uint64_t arrivals_ = 0;
  absl::flat_hash_map<RequestId, Entry> waiters_;
  std::set<OrderKey> order_;
  DeadlineQueue<RequestId> deadlines_;
  // resource -> priority -> how many waiters of that priority name it
  absl::flat_hash_map<ResourceId, std::map<int32_t, int>> wanted_;
};

}  // namespace ferry::control::placement
