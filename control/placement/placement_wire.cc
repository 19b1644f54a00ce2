#include "control/placement/placement_wire.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ferry::control::placement {
namespace {

absl::StatusOr<Constraint> ConstraintFromProto(pb::Constraint c) {
  switch (c) {
    case pb::CONSTRAINT_NONE: return Constraint::kNone;
    case pb::CONSTRAINT_SAME_NODE: return Constraint::kSameNode;
    case pb::CONSTRAINT_DIFFERENT_NODES: return Constraint::kDifferentNodes;
    case pb::CONSTRAINT_SAME_LABEL_VALUE: return Constraint::kSameLabelValue;
    default: return absl::InvalidArgumentError(absl::StrCat("unknown constraint ", static_cast<int>(c)));
  }
}

absl::StatusOr<Scoring> ScoringFromProto(pb::Scoring s) {
  switch (s) {
    case pb::SCORING_PACK: return Scoring::kPack;
    case pb::SCORING_SPREAD: return Scoring::kSpread;
    default: return absl::InvalidArgumentError(absl::StrCat("unknown scoring ", static_cast<int>(s)));
  }
}

}  // namespace

absl::StatusOr<ResourceMap> AmountsFromProto(const google::protobuf::Map<std::string, double>& amounts,
                                             const std::string& what) {
  ResourceMap out;
  for (const auto& [name, value] : amounts) {
    FERRY_ASSIGN_OR_RETURN(const int64_t amount, ParseAmount(value, absl::StrCat(what, " '", name, "'")));
    out[name] = amount;
  }
  return out;
}

absl::StatusOr<PlacementRequest> RequestFromProto(const pb::AcquireRequest& req, const WireLimits& limits,
                                                  absl::Time now) {
  PlacementRequest out;
  out.holder = req.holder();
  out.priority = req.priority();
  FERRY_ASSIGN_OR_RETURN(out.scoring, ScoringFromProto(req.scoring()));
  const absl::Duration wait = req.timeout_ms() == 0
                                  ? limits.max_wait
                                  : std::min(absl::Milliseconds(req.timeout_ms()), limits.max_wait);
  out.deadline = now + wait;
  out.lease_ttl = req.lease_ttl_ms() == 0 ? limits.default_ttl : absl::Milliseconds(req.lease_ttl_ms());
  if (out.lease_ttl > limits.max_ttl) {
    return absl::InvalidArgumentError(absl::StrCat("lease_ttl_ms ", req.lease_ttl_ms(), " exceeds the maximum of ",
                                                   absl::ToInt64Milliseconds(limits.max_ttl), " ms"));
  }
  for (int a = 0; a < req.alternatives_size(); ++a) {
    const pb::Alternative& alt = req.alternatives(a);
    PlacementAlternative p;
    FERRY_ASSIGN_OR_RETURN(p.constraint, ConstraintFromProto(alt.constraint()));
    p.label_key = alt.label_key();
    for (int b = 0; b < alt.bundles_size(); ++b) {
      FERRY_ASSIGN_OR_RETURN(ResourceMap bundle,
                             AmountsFromProto(alt.bundles(b).amounts(), absl::StrCat("alternative ", a, " bundle ", b)));
      p.bundles.push_back(std::move(bundle));
    }
    out.alternatives.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<NodeSelector> SelectorFromProto(const pb::NodeSelector& selector) {
  switch (selector.kind_case()) {
    case pb::NodeSelector::kNodeId:
      if (selector.node_id() == 0) return absl::InvalidArgumentError("selector node_id must be non-zero");
      return NodeSelector::Node(selector.node_id());
    case pb::NodeSelector::kLabels:
      return NodeSelector::WithLabels(Labels(selector.labels().labels().begin(), selector.labels().labels().end()));
    case pb::NodeSelector::kCoverFree: {
      FERRY_ASSIGN_OR_RETURN(ResourceMap cover, AmountsFromProto(selector.cover_free().amounts(), "cover_free"));
      return NodeSelector::CoverFree(std::move(cover), selector.cover_free().max_nodes());
    }
    default:
      return absl::InvalidArgumentError("selector names no nodes (set node_id, labels or cover_free)");
  }
}

absl::StatusOr<LeaseReport> ReportFromProto(const pb::Lease& lease, const std::string& holder,
                                            const WireLimits& limits) {
  const std::string what = absl::StrCat("reported lease ", lease.lease_id());
  if (lease.lease_id() == 0) return absl::InvalidArgumentError("reported lease has lease_id 0");
  if (!lease.holder().empty() && lease.holder() != holder) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is held by '", lease.holder(), "', not by the reporting holder '", holder, "'"));
  }
  if (lease.bundles_size() == 0 || static_cast<size_t>(lease.bundles_size()) > kMaxBundles) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must have 1..", kMaxBundles, " bundles, has ",
                                                   lease.bundles_size()));
  }
  LeaseReport out;
  out.id = lease.lease_id();
  out.holder = holder;
  out.alternative = lease.alternative();
  out.ttl = lease.ttl_ms() == 0 ? limits.default_ttl : absl::Milliseconds(lease.ttl_ms());
  if (out.ttl > limits.max_ttl) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ttl_ms ", lease.ttl_ms(), ", above the maximum of ",
                                                   absl::ToInt64Milliseconds(limits.max_ttl), " ms"));
  }
  for (int b = 0; b < lease.bundles_size(); ++b) {
    const pb::LeasedBundle& bundle = lease.bundles(b);
    if (bundle.node_id() == 0) return absl::InvalidArgumentError(absl::StrCat(what, " bundle ", b, " has node_id 0"));
    if (bundle.amounts().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " bundle ", b, " holds no amounts"));
    }
    FERRY_ASSIGN_OR_RETURN(ResourceMap amounts, AmountsFromProto(bundle.amounts(), absl::StrCat(what, " bundle ", b)));
    for (const auto& [name, amount] : amounts) {
      if (absl::Status s = ValidateResourceName(name); !s.ok()) return s;
      if (amount == 0) return absl::InvalidArgumentError(absl::StrCat(what, " bundle ", b, " holds 0 of '", name, "'"));
    }
    out.bundles.emplace_back(bundle.node_id(), std::move(amounts));
  }
  return out;
}

}  // namespace ferry::control::placement
