#include "control/collectives/batch_chains.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"

namespace ferry::control {

InFlightBatches::Objects InFlightBatches::MakeObjects(std::string ns, std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());
  Objects out;
  out.hash = absl::HashOf(ns, keys);
  out.ns = std::move(ns);
  out.keys = std::move(keys);
  return out;
}

void InFlightBatches::Register(OpId op, size_t group, NodeId source, Objects objects, std::vector<NodeId> targets) {
  if (targets.empty()) return;
  chains_[{op, group}] = Chain{source, std::move(objects), std::move(targets)};
}

void InFlightBatches::Unregister(OpId op) {
  auto it = chains_.lower_bound({op, 0});
  while (it != chains_.end() && it->first.first == op) it = chains_.erase(it);
}

NodeId InFlightBatches::Seed(NodeId source, const Objects& objects, const absl::flat_hash_set<NodeId>& exclude,
                             absl::FunctionRef<bool(NodeId)> alive) const {
  for (auto it = chains_.rbegin(); it != chains_.rend(); ++it) {
    const Chain& chain = it->second;
    if (chain.source != source || !(chain.objects == objects)) continue;
    for (auto t = chain.targets.rbegin(); t != chain.targets.rend(); ++t) {
      if (!exclude.contains(*t) && alive(*t)) return *t;
    }
  }
  return 0;
}

}  // namespace ferry::control
