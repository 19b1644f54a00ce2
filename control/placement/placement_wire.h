// Conversions between proto/placement.proto's messages and the placement core's types, with
// the validation that belongs to the wire: amounts are whole numbers in [0, 2^53] (ParseAmount),
// enums are known values, a selector names exactly one kind. The core (ValidateRequest,
// ResourceTable) checks the rest. Every error is INVALID_ARGUMENT naming the field.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/placement/placement_manager.h"
#include "control/placement/placement_request.h"
#include "control/placement/resource_table.h"
#include "google/protobuf/map.h"
#include "proto/placement.pb.h"

namespace ferry::control::placement {

namespace pb = ::ferry::proto::placement;

struct WireLimits {
  absl::Duration max_wait = absl::Hours(1);        // timeout_ms 0 or above it: this
  absl::Duration default_ttl = absl::Seconds(30);  // lease_ttl_ms 0: this
  absl::Duration max_ttl = absl::Hours(24);        // lease_ttl_ms above it: INVALID_ARGUMENT
};

// map<string, double> -> ResourceMap; `what` names the field in errors ("bundle 2").
[[nodiscard]] absl::StatusOr<ResourceMap> AmountsFromProto(const google::protobuf::Map<std::string, double>& amounts,
                                                          const std::string& what);
// The request as the core takes it; the deadline is `now` + the capped timeout.
[[nodiscard]] absl::StatusOr<PlacementRequest> RequestFromProto(const pb::AcquireRequest& req,
                                                                const WireLimits& limits, absl::Time now);
[[nodiscard]] absl::StatusOr<NodeSelector> SelectorFromProto(const pb::NodeSelector& selector);
// A re-reported lease (ReportLeases) as PlacementManager::Restore takes it: lease_id non-zero,
// its holder empty or `holder`, 1..kMaxBundles bundles each on a non-zero node with whole
// amounts, ttl_ms 0 (the default ttl) or at most max_ttl. The manager checks the rest.
[[nodiscard]] absl::StatusOr<LeaseReport> ReportFromProto(const pb::Lease& lease, const std::string& holder,
                                                          const WireLimits& limits);

}  // namespace ferry::control::placement
