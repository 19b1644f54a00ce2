#include "control/planner/broadcast_planner.h"

#include <tuple>

#include "absl/strings/str_cat.h"

namespace ferry::control {

void BroadcastPlanner::AddComplete(NodeId node) {
  Copy& c = copies_[node];
  if (c.upstream != 0) ReleaseSlot(c.upstream);
  c.complete = true;
  c.producing = false;
  c.upstream = 0;
  c.depth = 0;
}

void BroadcastPlanner::AddProducer(NodeId node) {
  if (copies_.contains(node)) return;
  copies_[node].producing = true;
}

bool BroadcastPlanner::IsProducing(NodeId node) const {
  auto it = copies_.find(node);
  return it != copies_.end() && it->second.producing;
}

void BroadcastPlanner::AddUnplannedPartial(NodeId node) {
  if (copies_.contains(node)) return;
  Copy& c = copies_[node];
  c.depth = kUnrooted;
}

bool BroadcastPlanner::IsComplete(NodeId node) const {
  auto it = copies_.find(node);
  return it != copies_.end() && it->second.complete;
}

size_t BroadcastPlanner::complete_copies() const {
  size_t n = 0;
  for (const auto& [id, c] : copies_) n += c.complete ? 1 : 0;
  return n;
}

uint32_t BroadcastPlanner::RootedDepth(NodeId node) const {
  uint32_t depth = 0;
  for (size_t hops = 0; hops <= copies_.size(); ++hops) {
    auto it = copies_.find(node);
    if (it == copies_.end()) return kUnrooted;
    if (it->second.complete || it->second.producing) return depth;
    if (it->second.upstream == 0) return kUnrooted;
    node = it->second.upstream;
    ++depth;
  }
  return kUnrooted;   // a cycle, which Attach never creates
}

// True if `candidate` pulls (directly or transitively) from `receiver`.
bool BroadcastPlanner::IsBelow(NodeId candidate, NodeId receiver) const {
  NodeId node = candidate;
  for (size_t hops = 0; hops <= copies_.size(); ++hops) {
    if (node == receiver) return true;
    auto it = copies_.find(node);
    if (it == copies_.end() || it->second.upstream == 0) return false;
    node = it->second.upstream;
  }
  return true;
}

absl::StatusOr<NodeId> BroadcastPlanner::Attach(NodeId receiver, const absl::flat_hash_set<NodeId>& exclude,
                                                const SenderDistance& distance) {
  auto self = copies_.find(receiver);
  if (self != copies_.end() && self->second.complete) {
    return absl::FailedPreconditionError(absl::StrCat("node ", receiver, " already holds a complete copy"));
  }
  if (self != copies_.end() && self->second.producing) {
    return absl::FailedPreconditionError(absl::StrCat("node ", receiver, " is producing the object"));
  }
  const bool has_subtree = self != copies_.end() && self->second.serving > 0;
  NodeId best = 0;
  // (distance, depth, serving, id): lowest wins.
  std::tuple<uint32_t, uint32_t, uint32_t, NodeId> best_key{0, kUnrooted, 0, 0};
  bool any_other = false;
  for (const auto& [id, c] : copies_) {
    if (id == receiver) continue;
    any_other = true;
    if (exclude.contains(id) || c.serving >= fanout_) continue;
    // Stored depth is exact for complete copies and an estimate for partial ones; a copy
    // that lost its sender (kUnrooted) cannot serve until re-attached.
    uint32_t depth = c.complete || c.producing ? 0 : c.depth;
    if (depth == kUnrooted) continue;
    std::tuple<uint32_t, uint32_t, uint32_t, NodeId> key{distance ? distance(id) : 0, depth, c.serving, id};
    if (best != 0 && key >= best_key) continue;
    if (has_subtree && IsBelow(id, receiver)) continue;
    best = id;
    best_key = key;
  }
  if (!any_other) return absl::NotFoundError("no copy of the object exists on another node");
  if (best == 0) return absl::UnavailableError("every copy is busy, excluded or downstream of the receiver");
  Copy& r = copies_[receiver];
  if (r.upstream != 0) ReleaseSlot(r.upstream);
  r.upstream = best;
  r.depth = std::get<1>(best_key) + 1;
  ++copies_[best].serving;
  return best;
}

void BroadcastPlanner::ReleaseSlot(NodeId sender) {
  auto it = copies_.find(sender);
  if (it != copies_.end() && it->second.serving > 0) --it->second.serving;
}

void BroadcastPlanner::Completed(NodeId receiver) { AddComplete(receiver); }

std::vector<NodeId> BroadcastPlanner::Detach(NodeId receiver, bool keep_partial) {
  auto it = copies_.find(receiver);
  if (it == copies_.end()) return {};
  if (it->second.upstream != 0) ReleaseSlot(it->second.upstream);
  it->second.upstream = 0;
  if (!it->second.complete) it->second.depth = kUnrooted;
  if (keep_partial || it->second.complete) return {};
  return DropCopy(receiver);
}

std::vector<NodeId> BroadcastPlanner::DropCopy(NodeId node) {
  auto it = copies_.find(node);
  if (it == copies_.end()) return {};
  if (it->second.upstream != 0) ReleaseSlot(it->second.upstream);
  copies_.erase(it);
  std::vector<NodeId> orphans;
  for (auto& [id, c] : copies_) {
    if (c.upstream == node) {
      c.upstream = 0;
      c.depth = kUnrooted;
      orphans.push_back(id);
    }
  }
  return orphans;
}

std::vector<NodeId> BroadcastPlanner::RemoveNode(NodeId node) { return DropCopy(node); }

}  // namespace ferry::control
