#include "control/cluster/locality.h"

#include <map>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"

namespace ferry::control {
namespace {

// The node's label `key`, or "" when it has none.
std::string_view Label(const proto::NodeInfo& n, std::string_view key) {
  auto it = n.labels().find(std::string(key));
  return it == n.labels().end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace

std::string_view HostOf(const proto::NodeInfo& n) {
  std::string_view host = Label(n, kHostLabel);
  return host.empty() ? std::string_view(n.name()) : host;
}

bool HasTopologyLabels(const proto::NodeInfo& n) { return !Label(n, kHostLabel).empty() || !Label(n, kRackLabel).empty(); }

uint32_t LocalityDistance(const proto::NodeInfo* a, const proto::NodeInfo* b) {
  if (a == nullptr || b == nullptr) return kRemote;
  if (a->node_id() == b->node_id() || HostOf(*a) == HostOf(*b)) return kSameHost;
  const std::string_view ra = Label(*a, kRackLabel);
  if (!ra.empty() && ra == Label(*b, kRackLabel)) return kSameRack;
  return kRemote;
}

std::vector<NodeId> OrderByLocality(const std::vector<NodeId>& targets, NodeId source,
                                    const std::function<const proto::NodeInfo*(NodeId)>& info) {
  const proto::NodeInfo* src = source == 0 ? nullptr : info(source);
  // Rank of each rack and host by first appearance (the source's first).
  absl::flat_hash_map<std::string, size_t> rack_rank;
  absl::flat_hash_map<std::string, size_t> host_rank;
  if (src != nullptr) {
    if (std::string_view r = Label(*src, kRackLabel); !r.empty()) rack_rank.emplace(std::string(r), 0);
    host_rank.emplace(std::string(HostOf(*src)), 0);
  }
  // (group, rack rank, host rank, position as given)
  using Key = std::tuple<uint32_t, size_t, size_t, size_t>;
  std::multimap<Key, NodeId> ordered;
  for (size_t i = 0; i < targets.size(); ++i) {
    const proto::NodeInfo* n = info(targets[i]);
    if (n == nullptr) {
      ordered.emplace(Key{4, 0, 0, i}, targets[i]);
      continue;
    }
    const uint32_t d = LocalityDistance(src, n);
    const std::string rack(Label(*n, kRackLabel));
    const std::string host(HostOf(*n));
    const size_t rr = rack.empty() ? 0 : rack_rank.emplace(rack, rack_rank.size()).first->second;
    const size_t hr = host_rank.emplace(host, host_rank.size()).first->second;
    // Same host, same rack, other racks, no rack.
    const uint32_t group = d == kSameHost ? 0 : d == kSameRack ? 1 : rack.empty() ? 3 : 2;
    ordered.emplace(Key{group, group == 2 ? rr : 0, hr, i}, targets[i]);
  }
  std::vector<NodeId> out;
  out.reserve(targets.size());
  for (const auto& [key, id] : ordered) out.push_back(id);
  return out;
}

}  // namespace ferry::control
