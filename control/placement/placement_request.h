// A placement request as a client states it (resource names), its validation, and its
// resolution against a ResourceTable (resource ids) for the Matcher.
//
// A request is an ordered list of alternatives: the first is preferred, each later one is a
// fallback (soft constraints: "8 GPUs on one node, else 8 on one rack, else anywhere"). The
// first alternative that can be granted now is granted; the request fails at once only when
// every alternative provably can never be granted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/placement/matcher.h"
#include "control/placement/resource_table.h"

namespace ferry::control::placement {

// Limits that keep one request's matching cost bounded.
inline constexpr size_t kMaxAlternatives = 8;
inline constexpr size_t kMaxBundles = 256;
inline constexpr size_t kMaxDemandsPerBundle = 64;
inline constexpr size_t kMaxHolderLength = 256;

struct PlacementAlternative {
  std::vector<ResourceMap> bundles;         // each: resource -> amount (> 0), on one node
  Constraint constraint = Constraint::kNone;
  std::string label_key;                    // kSameLabelValue: the label ("rack")
};

struct PlacementRequest {
  std::string holder;                              // the client id leases are granted to
  std::vector<PlacementAlternative> alternatives;  // preference order, at least one
  int32_t priority = 0;                            // higher is served first
  absl::Time deadline = absl::InfiniteFuture();    // wait no later than this
  absl::Duration lease_ttl = absl::Seconds(30);    // a grant expires unless renewed within this
  Scoring scoring = Scoring::kPack;
};

struct ResolvedRequest {
  std::vector<ResolvedAlternative> alternatives;
  std::vector<ResourceId> resources;  // every resource any alternative names, ascending
};

// Checks the shape of `request` (no table needed): a holder, 1..kMaxAlternatives alternatives,
// each with 1..kMaxBundles non-empty bundles of valid names and amounts > 0, a label key exactly
// for kSameLabelValue, a positive finite lease_ttl and a deadline after `now`.
// INVALID_ARGUMENT naming the first problem.
[[nodiscard]] absl::Status ValidateRequest(const PlacementRequest& request, absl::Time now);

// Turns names into ids. With `intern_unknown` false, a name no node has is NOT_FOUND ("unknown
// resource"); with it true (rebuild: nodes may not have re-registered yet) unknown names are
// interned so the request can wait. `request` must have passed ValidateRequest.
[[nodiscard]] absl::StatusOr<ResolvedRequest> ResolveRequest(const PlacementRequest& request, ResourceTable& table,
                                                             bool intern_unknown);

}  // namespace ferry::control::placement
