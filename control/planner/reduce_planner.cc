#include "control/planner/reduce_planner.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ferry::control {

absl::StatusOr<std::unique_ptr<ReducePlanner>> ReducePlanner::Create(std::vector<NodeId> inputs,
                                                                     uint32_t num_objects,
                                                                     uint32_t chain_length) {
  if (inputs.empty()) return absl::InvalidArgumentError("reduce: no inputs");
  absl::flat_hash_set<NodeId> seen;
  for (NodeId node : inputs) {
    if (node == 0) return absl::InvalidArgumentError("reduce: input node 0 (no node)");
    if (!seen.insert(node).second) {
      return absl::InvalidArgumentError(absl::StrCat("reduce: node ", node, " is listed twice as an input"));
    }
  }
  if (num_objects == 0 || num_objects > inputs.size()) {
    return absl::InvalidArgumentError(absl::StrCat("reduce: num_objects ", num_objects, " must be in [1, ",
                                                   inputs.size(), "] (the number of inputs)"));
  }
  ReduceShape shape = PlanReduceShape(num_objects, chain_length);
  return std::unique_ptr<ReducePlanner>(new ReducePlanner(std::move(inputs), std::move(shape)));
}

ReducePlanner::ReducePlanner(std::vector<NodeId> inputs, ReduceShape shape)
    : order_(std::move(inputs)), shape_(std::move(shape)), slots_(shape_.positions.size()) {
  for (NodeId node : order_) inputs_[node] = Input{};
  for (uint32_t p = 0; p < slots_.size(); ++p) vacant_.insert(p);
}

absl::StatusOr<std::vector<ReducePlanner::Step>> ReducePlanner::InputReady(NodeId node, bool root) {
  auto it = inputs_.find(node);
  if (it == inputs_.end()) return absl::NotFoundError(absl::StrCat("reduce: node ", node, " is not an input"));
  Input& in = it->second;
  if (in.state == InputState::kSpare || in.state == InputState::kPlaced) {
    return absl::AlreadyExistsError(absl::StrCat("reduce: the input on node ", node, " is already ready"));
  }
  if (in.state == InputState::kFailed && in.position != kNoPosition) return std::vector<Step>{};   // in the result
  if (root && root_reserved_) {
    if (root_input_ != 0 && root_input_ != node) {
      return absl::FailedPreconditionError(absl::StrCat("reduce: the root is reserved for node ", root_input_,
                                                        ", not node ", node));
    }
    root_input_ = node;
  }
  in.state = InputState::kSpare;
  spares_.push_back(node);
  StepSet steps;
  FillVacancies(steps);
  return Emit(steps);
}

absl::StatusOr<std::vector<ReducePlanner::Step>> ReducePlanner::InputFailed(NodeId node) {
  auto it = inputs_.find(node);
  if (it == inputs_.end()) return absl::NotFoundError(absl::StrCat("reduce: node ", node, " is not an input"));
  Input& in = it->second;
  StepSet steps;
  switch (in.state) {
    case InputState::kFailed:
      return std::vector<Step>{};
    case InputState::kWaiting:
      in.state = InputState::kFailed;
      return std::vector<Step>{};
    case InputState::kSpare:
      spares_.erase(std::find(spares_.begin(), spares_.end(), node));
      in.state = InputState::kFailed;
      if (node != root_input_ || !root_reserved_) return std::vector<Step>{};
      root_reserved_ = false;   // the chosen root is gone: any spare may take the root now
      FillVacancies(steps);
      return Emit(steps);
    case InputState::kPlaced:
      if (node == root_input_) root_reserved_ = false;
      in.state = InputState::kFailed;   // keeps its position: its data may be in the result
      slots_[in.position].alive = false;
      VacateNeeded(steps);
      FillVacancies(steps);
      return Emit(steps);
  }
  return std::vector<Step>{};
}

absl::Status ReducePlanner::PositionDone(NodeId node) {
  auto it = inputs_.find(node);
  if (it == inputs_.end()) return absl::NotFoundError(absl::StrCat("reduce: node ", node, " is not an input"));
  if (it->second.state != InputState::kPlaced) {
    return absl::FailedPreconditionError(absl::StrCat("reduce: node ", node, " holds no live position"));
  }
  const uint32_t p = it->second.position;
  for (uint32_t c : shape_.positions[p].children) {
    if (slots_[c].node == 0) {
      return absl::FailedPreconditionError(absl::StrCat("reduce: position ", p, " (node ", node,
                                                        ") cannot be complete: its child position ", c,
                                                        " is vacant"));
    }
  }
  slots_[p].done = true;
  return absl::OkStatus();
}

bool ReducePlanner::Done() const {
  const Slot& root = slots_.back();
  return root.node != 0 && root.alive && root.done;
}

std::vector<NodeId> ReducePlanner::Used() const {
  std::vector<NodeId> used;
  for (const Slot& s : slots_) {
    if (s.node != 0) used.push_back(s.node);
  }
  return used;
}

ReducePlanner::Outcome ReducePlanner::GiveUp() const {
  Outcome out;
  out.used = Used();
  for (NodeId node : order_) {
    const Input& in = inputs_.at(node);
    if (in.state == InputState::kFailed && in.position == kNoPosition) out.lost.push_back(node);
    if (in.state == InputState::kWaiting) out.not_ready.push_back(node);
  }
  return out;
}

NodeId ReducePlanner::NodeAt(uint32_t position) const {
  return position < slots_.size() ? slots_[position].node : 0;
}

std::optional<uint32_t> ReducePlanner::PositionOf(NodeId node) const {
  auto it = inputs_.find(node);
  if (it == inputs_.end() || it->second.position == kNoPosition) return std::nullopt;
  return it->second.position;
}

bool ReducePlanner::Needed(uint32_t position) const {
  const uint32_t parent = shape_.positions[position].parent;
  return parent == kNoPosition || !slots_[parent].done;
}

void ReducePlanner::Place(NodeId node, uint32_t position, StepSet& steps) {
  slots_[position] = Slot{node, true, false};
  vacant_.erase(position);
  inputs_[node] = Input{InputState::kPlaced, position};
  steps.emplace(position, false);
  const uint32_t parent = shape_.positions[position].parent;
  if (parent != kNoPosition && slots_[parent].node != 0 && slots_[parent].alive) {
    steps.emplace(parent, false);   // its children changed (keeps a recompute already ordered)
  }
}

void ReducePlanner::VacateNeeded(StepSet& steps) {
  // Vacating a position un-does its ancestors, which can make a failed-but-consumed child of
  // one of them needed again: repeat until nothing changes (each pass vacates >= 1 position).
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t p = 0; p < slots_.size(); ++p) {
      Slot& s = slots_[p];
      if (s.node == 0 || s.alive || !Needed(p)) continue;
      inputs_[s.node].position = kNoPosition;   // its data leaves the result
      s = Slot{};
      vacant_.insert(p);
      for (uint32_t a = shape_.positions[p].parent; a != kNoPosition; a = shape_.positions[a].parent) {
        slots_[a].done = false;
        if (slots_[a].node != 0 && slots_[a].alive) steps[a] = true;   // must recompute
      }
      changed = true;
    }
  }
}

void ReducePlanner::ReserveRoot() {
  if (slots_.back().node == 0) root_reserved_ = true;
}

std::vector<ReducePlanner::Step> ReducePlanner::ReleaseRoot() {
  if (!root_reserved_) return {};
  root_reserved_ = false;
  StepSet steps;
  FillVacancies(steps);
  return Emit(steps);
}

void ReducePlanner::FillVacancies(StepSet& steps) {
  // Lowest vacant position first; a reserved root takes only its own input, which in turn
  // takes the root (the highest position, vacant while reserved).
  const uint32_t root = static_cast<uint32_t>(slots_.size() - 1);
  for (auto it = spares_.begin(); it != spares_.end() && !vacant_.empty();) {
    const NodeId node = *it;
    uint32_t position = *vacant_.begin();
    if (root_reserved_ && node == root_input_ && vacant_.contains(root)) {
      position = root;
    } else if (root_reserved_ && position == root) {
      ++it;   // the only vacancy is held for the chosen root's input
      continue;
    }
    it = spares_.erase(it);
    Place(node, position, steps);
  }
}

std::vector<ReducePlanner::Step> ReducePlanner::Emit(const StepSet& steps) const {
  auto live = [this](uint32_t p) { return p != kNoPosition && slots_[p].alive ? slots_[p].node : NodeId{0}; };
  std::vector<Step> out;
  for (const auto& [p, recompute] : steps) {
    if (live(p) == 0) continue;
    Step step{slots_[p].node, p, live(shape_.positions[p].parent), {}, recompute};
    for (uint32_t c : shape_.positions[p].children) step.children.push_back(live(c));
    out.push_back(std::move(step));
  }
  return out;
}

uint32_t ReducePlanner::vacant() const { return static_cast<uint32_t>(vacant_.size()); }

}  // namespace ferry::control
