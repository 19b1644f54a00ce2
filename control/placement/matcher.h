// Matcher: finds nodes for every bundle of one placement alternative, or says why none.
//
// A bundle is a set of demands that must land on one node. An alternative is a list of
// bundles plus one constraint between them:
//   kNone            bundles go anywhere (two may share a node)
//   kSameNode        all bundles on one node (matched as their sum: exact)
//   kDifferentNodes  every bundle on its own node (anti-affinity)
//   kSameLabelValue  all bundles on nodes that share one value of label `label_key` (a rack)
//
// Matching runs against a basis: kFree (what is free now: "can it be granted now?") or
// kCapacity (as if nothing were allocated: "can it ever be granted, with today's nodes?").
// It only reads the ResourceTable; the caller allocates.
//
// Search and its limits:
//  * One bundle: complete. Candidates come from the index of the bundle's rarest resource
//    (fewest holders), so no scan of the cluster: kPack takes the node with the least free
//    amount of that resource that still covers the demand (best fit), kSpread the one with the
//    most; ties go to the lower node id (pack) / higher node id (spread). Scoring looks at the
//    rarest resource only; the other demands are a filter.
//  * Several bundles: bundles are placed in request order (bundle i keeps its index, so rank
//    order is the caller's), greedy by the same scoring. kDifferentNodes falls back to an exact
//    bipartite matching (Kuhn's augmenting paths) when greedy fails, so it is complete. kNone
//    and kSameLabelValue (bin packing) backtrack, at most kMaxBacktracks steps, and can miss an
//    assignment that exists when that budget runs out; the result then says exhaustive=false.
//    With kSpread, kNone first tries (greedily) to put every bundle on a different node.
//    kSameLabelValue tries the label's values in order, skipping a value where some bundle fits
//    none of its nodes.
//  * ProveNever is exact for one bundle, kSameNode and kDifferentNodes; for kNone and
//    kSameLabelValue it proves "never" only by necessary conditions (each bundle fits some node;
//    each resource's total demand fits the total capacity) or by an exhaustive capacity search,
//    so a request it cannot prove impossible waits until its deadline.
//
// Deterministic: the same table and alternative give the same nodes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/placement/resource_table.h"

namespace ferry::control::placement {

enum class Scoring { kPack, kSpread };
enum class Constraint { kNone, kSameNode, kDifferentNodes, kSameLabelValue };
enum class Basis { kFree, kCapacity };

// A bundle as the table numbers it: demands sorted by resource id, no duplicates, amounts > 0.
struct ResolvedBundle {
  std::vector<Demand> demands;
};
struct ResolvedAlternative {
  std::vector<ResolvedBundle> bundles;  // at least one
  Constraint constraint = Constraint::kNone;
  std::string label_key;                // kSameLabelValue only
};

struct MatchResult {
  bool found = false;
  std::vector<NodeId> nodes;  // found: nodes[i] holds bundles[i]
  bool exhaustive = true;     // !found: the search was complete (none exists on this basis)
  std::string why;            // !found: the first demand that could not be met, in words
};

// Backtracking steps one multi-bundle search may take before giving up.
inline constexpr int kMaxBacktracks = 64;

class Matcher {
 public:
  // `table` must outlive the matcher and not change while Match runs.
  Matcher(const ResourceTable& table, Scoring scoring) : table_(table), scoring_(scoring) {}

  MatchResult Match(const ResolvedAlternative& alt, Basis basis) const;
  // If `alt` provably can never be granted with the table's capacities, the reason (naming the
  // unsatisfiable demand); nullopt if it can, or might.
  std::optional<std::string> ProveNever(const ResolvedAlternative& alt) const;

 private:
  class Search;
  // Candidate nodes: all nodes (nullptr) or one label group.
  using Pool = const std::set<NodeId>*;

  MatchResult MatchSameLabel(const ResolvedAlternative& alt, Basis basis) const;
  MatchResult MatchDifferent(const ResolvedAlternative& alt, Basis basis) const;
  // Exact bipartite matching of bundles to distinct nodes.
  MatchResult MatchBipartite(const ResolvedAlternative& alt, Basis basis) const;
  std::optional<std::string> NecessaryConditions(const std::vector<ResolvedBundle>& bundles, Pool pool) const;
  // Why bundle `index` fits no node of `pool` on `basis` ("" if it fits one).
  std::string ExplainBundle(const ResolvedBundle& bundle, size_t index, Basis basis, Pool pool) const;
  int64_t Amount(NodeId node, ResourceId r, Basis basis) const;
  bool Fits(NodeId node, const ResolvedBundle& bundle, Basis basis) const;
  std::string DemandText(const Demand& d) const;

  const ResourceTable& table_;
  const Scoring scoring_;
};

// The sum of `bundles` as one bundle (kSameNode).
ResolvedBundle MergeBundles(const std::vector<ResolvedBundle>& bundles);

}  // namespace ferry::control::placement
