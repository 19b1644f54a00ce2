#include "control/placement/matcher.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ferry::control::placement {
namespace {

// The demand whose resource has the fewest holders: its index yields the fewest candidates.
const Demand& RarestDemand(const ResourceTable& table, const ResolvedBundle& bundle) {
  const Demand* best = &bundle.demands[0];
  for (const Demand& d : bundle.demands) {
    if (table.Holders(d.resource).size() < table.Holders(best->resource).size()) best = &d;
  }
  return *best;
}

const char* ConstraintName(Constraint c) {
  switch (c) {
    case Constraint::kNone: return "no constraint";
    case Constraint::kSameNode: return "same node";
    case Constraint::kDifferentNodes: return "different nodes";
    case Constraint::kSameLabelValue: return "same label value";
  }
  return "?";
}

}  // namespace

ResolvedBundle MergeBundles(const std::vector<ResolvedBundle>& bundles) {
  std::map<ResourceId, int64_t> sum;
  for (const ResolvedBundle& b : bundles) {
    for (const Demand& d : b.demands) sum[d.resource] += d.amount;
  }
  ResolvedBundle out;
  for (const auto& [r, amount] : sum) out.demands.push_back({r, amount});
  return out;
}

// One search over a list of bundles: greedy in bundle order with bounded backtracking. Tentative
// placements of earlier bundles are an overlay over the table, so the table is never written.
class Matcher::Search {
 public:
  Search(const Matcher& m, const std::vector<ResolvedBundle>& bundles, Pool pool, Basis basis, bool distinct)
      : m_(m), bundles_(bundles), pool_(pool), basis_(basis), distinct_(distinct) {}

  // Searches with at most `max_backtracks` backtracking steps (0: pure greedy).
  MatchResult Run(int max_backtracks = kMaxBacktracks) {
    MatchResult result;
    const size_t n = bundles_.size();
    std::vector<NodeId> chosen;
    int backtracks = 0;
    cursors_.push_back(MakeCursor(bundles_[0]));
    while (true) {
      const size_t level = chosen.size();
      if (std::optional<NodeId> node = NextFitting(level, chosen)) {
        chosen.push_back(*node);
        for (const Demand& d : bundles_[level].demands) overlay_.push_back({*node, d.resource, d.amount});
        if (chosen.size() == n) {
          result.found = true;
          result.nodes = std::move(chosen);
          return result;
        }
        cursors_.push_back(MakeCursor(bundles_[chosen.size()]));
        continue;
      }
      if (level == 0) return result;  // every choice for bundle 0 tried: exhaustive
      if (++backtracks > max_backtracks) {
        result.exhaustive = false;
        return result;
      }
      cursors_.pop_back();
      chosen.pop_back();
      overlay_.resize(overlay_.size() - bundles_[level - 1].demands.size());
    }
  }

 private:
  // Candidate nodes for one bundle, best first: a range of the rarest resource's index, or a
  // sorted copy of a label group. Iterated forward (pack) or backward (spread).
  struct Cursor {
    bool use_list = false;
    FreeIndex::const_iterator lo, hi;
    std::vector<std::pair<int64_t, NodeId>> list;
    size_t list_lo = 0, list_hi = 0;
  };

  Cursor MakeCursor(const ResolvedBundle& bundle) const {
    const Demand& key = RarestDemand(m_.table_, bundle);
    const int64_t need = basis_ == Basis::kFree ? key.amount : 0;
    Cursor c;
    if (pool_ == nullptr) {
      const FreeIndex& index = m_.table_.Holders(key.resource);
      c.lo = index.lower_bound({need, 0});
      c.hi = index.end();
      return c;
    }
    c.use_list = true;
    for (NodeId node : *pool_) {
      const int64_t amount = m_.Amount(node, key.resource, basis_);
      if (amount >= key.amount) c.list.push_back({amount, node});
    }
    std::sort(c.list.begin(), c.list.end());
    c.list_hi = c.list.size();
    return c;
  }

  std::optional<NodeId> Next(Cursor& c) const {
    const bool forward = m_.scoring_ == Scoring::kPack;
    if (c.use_list) {
      if (c.list_lo == c.list_hi) return std::nullopt;
      return forward ? c.list[c.list_lo++].second : c.list[--c.list_hi].second;
    }
    if (c.lo == c.hi) return std::nullopt;
    if (forward) return (c.lo++)->second;
    return (--c.hi)->second;
  }

  std::optional<NodeId> NextFitting(size_t level, const std::vector<NodeId>& chosen) {
    const ResolvedBundle& bundle = bundles_[level];
    while (std::optional<NodeId> node = Next(cursors_[level])) {
      if (distinct_ && std::find(chosen.begin(), chosen.end(), *node) != chosen.end()) continue;
      if (FitsWithOverlay(*node, bundle)) return node;
    }
    return std::nullopt;
  }

  bool FitsWithOverlay(NodeId node, const ResolvedBundle& bundle) const {
    for (const Demand& d : bundle.demands) {
      int64_t used = 0;
      for (const auto& [n, r, amount] : overlay_) used += (n == node && r == d.resource) ? amount : 0;
      if (m_.Amount(node, d.resource, basis_) - used < d.amount) return false;
    }
    return true;
  }

  const Matcher& m_;
  const std::vector<ResolvedBundle>& bundles_;
  const Pool pool_;
  const Basis basis_;
  const bool distinct_;
  std::vector<Cursor> cursors_;
  std::vector<std::tuple<NodeId, ResourceId, int64_t>> overlay_;  // tentative placements
};

MatchResult Matcher::Match(const ResolvedAlternative& alt, Basis basis) const {
  MatchResult result;
  switch (alt.constraint) {
    case Constraint::kSameNode: {
      const std::vector<ResolvedBundle> merged{MergeBundles(alt.bundles)};
      result = Search(*this, merged, nullptr, basis, false).Run();
      if (result.found) result.nodes.assign(alt.bundles.size(), result.nodes[0]);
      break;
    }
    case Constraint::kDifferentNodes:
      result = MatchDifferent(alt, basis);
      break;
    case Constraint::kSameLabelValue:
      result = MatchSameLabel(alt, basis);
      break;
    case Constraint::kNone:
      if (scoring_ == Scoring::kSpread && alt.bundles.size() > 1) {
        result = Search(*this, alt.bundles, nullptr, basis, true).Run(0);  // a preference: greedy only
        if (result.found) break;
      }
      result = Search(*this, alt.bundles, nullptr, basis, false).Run();
      break;
  }
  if (result.found) return result;
  for (size_t i = 0; i < alt.bundles.size() && result.why.empty(); ++i) {
    result.why = ExplainBundle(alt.bundles[i], i, basis, nullptr);
  }
  if (result.why.empty()) {
    result.why = absl::StrCat("the ", alt.bundles.size(), " bundles do not fit together (",
                              ConstraintName(alt.constraint),
                              alt.label_key.empty() ? "" : absl::StrCat(" '", alt.label_key, "'"), ")",
                              result.exhaustive ? "" : " within the search budget");
  }
  return result;
}

MatchResult Matcher::MatchDifferent(const ResolvedAlternative& alt, Basis basis) const {
  // Greedy keeps the scoring; when it fails, the exact matching decides (no backtracking).
  MatchResult greedy = Search(*this, alt.bundles, nullptr, basis, true).Run(0);
  if (greedy.found) return greedy;
  return MatchBipartite(alt, basis);
}

MatchResult Matcher::MatchBipartite(const ResolvedAlternative& alt, Basis basis) const {
  const size_t n = alt.bundles.size();
  // A bundle with >= n candidates can always be given one of its first n (at most n-1 are
  // taken by the others), so longer lists are cut there.
  std::vector<std::vector<NodeId>> adj(n);
  for (size_t b = 0; b < n; ++b) {
    const Demand& key = RarestDemand(table_, alt.bundles[b]);
    const FreeIndex& index = table_.Holders(key.resource);
    for (auto it = index.lower_bound({basis == Basis::kFree ? key.amount : 0, 0}); it != index.end(); ++it) {
      if (Fits(it->second, alt.bundles[b], basis)) adj[b].push_back(it->second);
      if (adj[b].size() >= n) break;
    }
  }
  absl::flat_hash_map<NodeId, size_t> owner;
  std::vector<NodeId> assigned(n, 0);
  absl::flat_hash_set<NodeId> visited;
  // Kuhn's augmenting paths: depth at most n.
  auto augment = [&](auto& self, size_t b) -> bool {
    for (NodeId node : adj[b]) {
      if (!visited.insert(node).second) continue;
      auto it = owner.find(node);
      if (it == owner.end() || self(self, it->second)) {
        owner[node] = b;
        assigned[b] = node;
        return true;
      }
    }
    return false;
  };
  MatchResult result;
  for (size_t b = 0; b < n; ++b) {
    visited.clear();
    if (!augment(augment, b)) {
      result.why = absl::StrCat("the ", n, " bundles need ", n, " different nodes; bundle ", b,
                                " finds no node left for it (", adj[b].size(), " nodes can hold it)");
      return result;
    }
  }
  result.found = true;
  result.nodes = std::move(assigned);
  return result;
}

MatchResult Matcher::MatchSameLabel(const ResolvedAlternative& alt, Basis basis) const {
  MatchResult result;
  const auto* groups = table_.LabelValues(alt.label_key);
  if (groups == nullptr) {
    result.why = absl::StrCat("no node has label '", alt.label_key, "'");
    return result;
  }
  bool exhaustive = true;
  for (const auto& [value, nodes] : *groups) {
    // Cheap proof that this group cannot work (some bundle fits none of its nodes) before the
    // search, which copies and sorts the group per bundle.
    const bool each_fits = std::all_of(alt.bundles.begin(), alt.bundles.end(), [&](const ResolvedBundle& b) {
      return std::any_of(nodes.begin(), nodes.end(), [&](NodeId n) { return Fits(n, b, basis); });
    });
    if (!each_fits) continue;
    MatchResult r = Search(*this, alt.bundles, &nodes, basis, false).Run();
    if (r.found) return r;
    exhaustive = exhaustive && r.exhaustive;
  }
  result.exhaustive = exhaustive;
  result.why = absl::StrCat("no value of label '", alt.label_key, "' has nodes that hold all ", alt.bundles.size(),
                            " bundles", exhaustive ? "" : " (within the search budget)");
  return result;
}

std::optional<std::string> Matcher::ProveNever(const ResolvedAlternative& alt) const {
  switch (alt.constraint) {
    case Constraint::kSameNode: {
      std::string why = ExplainBundle(MergeBundles(alt.bundles), 0, Basis::kCapacity, nullptr);
      if (why.empty()) return std::nullopt;
      return absl::StrCat("all bundles on one node: ", why);
    }
    case Constraint::kDifferentNodes: {
      if (std::optional<std::string> why = NecessaryConditions(alt.bundles, nullptr)) return why;
      MatchResult r = MatchBipartite(alt, Basis::kCapacity);
      if (r.found) return std::nullopt;
      return r.why;
    }
    case Constraint::kNone: {
      if (std::optional<std::string> why = NecessaryConditions(alt.bundles, nullptr)) return why;
      MatchResult r = Match(alt, Basis::kCapacity);
      if (r.found || !r.exhaustive) return std::nullopt;
      return r.why;
    }
    case Constraint::kSameLabelValue: {
      const auto* groups = table_.LabelValues(alt.label_key);
      if (groups == nullptr) return absl::StrCat("no node has label '", alt.label_key, "'");
      std::string first;
      for (const auto& [value, nodes] : *groups) {
        std::optional<std::string> why = NecessaryConditions(alt.bundles, &nodes);
        if (!why) {
          MatchResult r = Search(*this, alt.bundles, &nodes, Basis::kCapacity, false).Run();
          if (r.found || !r.exhaustive) return std::nullopt;
          why = "the bundles do not fit together";
        }
        if (first.empty()) first = absl::StrCat("label ", alt.label_key, "=", value, ": ", *why);
      }
      return absl::StrCat("no value of label '", alt.label_key, "' can ever hold all ", alt.bundles.size(),
                          " bundles (", first, ")");
    }
  }
  return std::nullopt;
}

std::optional<std::string> Matcher::NecessaryConditions(const std::vector<ResolvedBundle>& bundles, Pool pool) const {
  for (size_t i = 0; i < bundles.size(); ++i) {
    std::string why = ExplainBundle(bundles[i], i, Basis::kCapacity, pool);
    if (!why.empty()) return why;
  }
  for (const Demand& d : MergeBundles(bundles).demands) {
    int64_t total = 0;
    if (pool == nullptr) {
      total = table_.TotalCapacity(d.resource);
    } else {
      for (NodeId node : *pool) total += table_.Capacity(node, d.resource);
    }
    if (total < d.amount) {
      return absl::StrCat("the bundles need ", DemandText(d), " in total, but all nodes together have ", total);
    }
  }
  return std::nullopt;
}

std::string Matcher::ExplainBundle(const ResolvedBundle& bundle, size_t index, Basis basis, Pool pool) const {
  const char* what = basis == Basis::kFree ? "free" : "capacity";
  for (const Demand& d : bundle.demands) {
    const FreeIndex& holders = table_.Holders(d.resource);
    int64_t best = 0;
    if (pool == nullptr && basis == Basis::kFree) {
      best = holders.empty() ? 0 : holders.rbegin()->first;
    } else if (pool == nullptr) {
      for (const auto& [free, node] : holders) best = std::max(best, table_.Capacity(node, d.resource));
    } else {
      for (NodeId node : *pool) best = std::max(best, Amount(node, d.resource, basis));
    }
    if (holders.empty()) return absl::StrCat("bundle ", index, " needs ", DemandText(d), ", but no node has '",
                                             table_.Name(d.resource), "'");
    if (best < d.amount) {
      return absl::StrCat("bundle ", index, " needs ", DemandText(d), ", but the largest ", what, " of '",
                          table_.Name(d.resource), "' on any node is ", best);
    }
  }
  if (bundle.demands.size() == 1) return "";
  const std::vector<ResolvedBundle> one{bundle};
  if (Search(*this, one, pool, basis, false).Run().found) return "";
  std::vector<std::string> parts;
  for (const Demand& d : bundle.demands) parts.push_back(DemandText(d));
  return absl::StrCat("bundle ", index, " needs {", absl::StrJoin(parts, ", "),
                      "} on one node, but no node has all of it",
                      basis == Basis::kFree ? " free" : "");
}

int64_t Matcher::Amount(NodeId node, ResourceId r, Basis basis) const {
  return basis == Basis::kFree ? table_.Free(node, r) : table_.Capacity(node, r);
}

bool Matcher::Fits(NodeId node, const ResolvedBundle& bundle, Basis basis) const {
  for (const Demand& d : bundle.demands) {
    if (Amount(node, d.resource, basis) < d.amount) return false;
  }
  return true;
}

std::string Matcher::DemandText(const Demand& d) const { return absl::StrCat(table_.Name(d.resource), "=", d.amount); }

}  // namespace ferry::control::placement
