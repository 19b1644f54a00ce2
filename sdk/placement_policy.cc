// The placement policies of include/ferry/placement.h: each is a request shape (a constraint,
// a scoring, a priority) over the same PlacementRequest; DataLocality also creates a resource.
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ferry/placement.h"

namespace ferry {
namespace {

PlacementRequest One(std::vector<ResourceAmounts> bundles, PlacementConstraint constraint, std::string label_key,
                     PlacementScoring scoring) {
  PlacementRequest r;
  r.alternatives.push_back(PlacementAlternative{std::move(bundles), constraint, std::move(label_key)});
  r.scoring = scoring;
  return r;
}

}  // namespace

std::vector<ResourceAmounts> Bundles(size_t n, const ResourceAmounts& bundle) {
  return std::vector<ResourceAmounts>(n, bundle);
}

PlacementRequest Gang(std::vector<ResourceAmounts> bundles) {
  return One(std::move(bundles), PlacementConstraint::kNone, "", PlacementScoring::kPack);
}
PlacementRequest Affinity(std::vector<ResourceAmounts> bundles, std::string label_key) {
  return One(std::move(bundles), PlacementConstraint::kSameLabelValue, std::move(label_key), PlacementScoring::kPack);
}
PlacementRequest AntiAffinity(std::vector<ResourceAmounts> bundles) {
  return One(std::move(bundles), PlacementConstraint::kDifferentNodes, "", PlacementScoring::kPack);
}
PlacementRequest Spread(std::vector<ResourceAmounts> bundles) {
  return One(std::move(bundles), PlacementConstraint::kNone, "", PlacementScoring::kSpread);
}
PlacementRequest Pack(std::vector<ResourceAmounts> bundles) {
  return One(std::move(bundles), PlacementConstraint::kNone, "", PlacementScoring::kPack);
}
PlacementRequest Priority(PlacementRequest request, int32_t priority) {
  request.priority = priority;
  return request;
}

absl::StatusOr<PlacementRequest> DataLocality(PlacementClient& client, PlacementRequest request,
                                              const std::vector<uint64_t>& nodes, const std::string& resource,
                                              double per_node) {
  if (nodes.empty()) return absl::InvalidArgumentError("DataLocality needs at least one node");
  if (request.alternatives.empty()) return absl::InvalidArgumentError("DataLocality needs a request with bundles");
  if (!(per_node >= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("DataLocality per_node must be >= 1, got ", per_node));
  }
  for (uint64_t node : nodes) {
    absl::StatusOr<std::vector<uint64_t>> set = client.SetResource(resource, per_node, ResourceSelector::Node(node));
    if (!set.ok()) {
      return absl::Status(set.status().code(), absl::StrCat("DataLocality: creating '", resource, "' on node ", node,
                                                            ": ", set.status().message()));
    }
  }
  for (PlacementAlternative& a : request.alternatives) {
    for (ResourceAmounts& b : a.bundles) b[resource] += 1;
  }
  return request;
}

std::vector<size_t> RankOrderByNode(const PlacementLease& lease) {
  // Nodes in order of first appearance, each with its bundles in request order.
  std::vector<std::vector<size_t>> groups;
  absl::flat_hash_map<uint64_t, size_t> group_of;
  for (size_t i = 0; i < lease.bundles.size(); ++i) {
    auto [it, fresh] = group_of.try_emplace(lease.bundles[i].node_id, groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  std::vector<size_t> order;
  order.reserve(lease.bundles.size());
  for (const std::vector<size_t>& g : groups) order.insert(order.end(), g.begin(), g.end());
  return order;
}

}  // namespace ferry
