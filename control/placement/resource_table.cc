#include "control/placement/resource_table.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ferry::control::placement {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '/' || c == '-';
}

absl::Status ValidateLabels(const Labels& labels) {
  for (const auto& [key, value] : labels) {
    if (key.empty() || key.size() > kMaxNameLength) {
      return absl::InvalidArgumentError(absl::StrCat("label key '", key, "' must be 1..", kMaxNameLength,
                                                     " characters"));
    }
    if (value.size() > kMaxNameLength) {
      return absl::InvalidArgumentError(absl::StrCat("label '", key, "' has a value longer than ",
                                                     kMaxNameLength, " characters"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

NodeSelector NodeSelector::Node(NodeId node) {
  NodeSelector s;
  s.kind = Kind::kNode;
  s.node = node;
  return s;
}

NodeSelector NodeSelector::WithLabels(Labels labels) {
  NodeSelector s;
  s.kind = Kind::kLabels;
  s.labels = std::move(labels);
  return s;
}

NodeSelector NodeSelector::CoverFree(ResourceMap cover, int64_t max_nodes) {
  NodeSelector s;
  s.kind = Kind::kCoverFree;
  s.cover = std::move(cover);
  s.max_nodes = max_nodes;
  return s;
}

absl::Status ValidateResourceName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("resource name '", name, "' must be 1..", kMaxNameLength,
                                                   " characters"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource name '", name, "' may contain only letters, digits and _.:/-"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAmount(int64_t amount, absl::string_view what) {
  if (amount < 0) return absl::InvalidArgumentError(absl::StrCat(what, " is negative (", amount, ")"));
  if (amount > kMaxAmount) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", amount, ", above the limit 2^53"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseAmount(double value, absl::string_view what) {
  if (!std::isfinite(value)) return absl::InvalidArgumentError(absl::StrCat(what, " is not a finite number"));
  if (value < 0) return absl::InvalidArgumentError(absl::StrCat(what, " is negative (", value, ")"));
  if (value > static_cast<double>(kMaxAmount)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", value, ", above the limit 2^53"));
  }
  if (std::floor(value) != value) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", value, ", not an integer (fractional resources are counted in milli-units)"));
  }
  return static_cast<int64_t>(value);
}

absl::Status ResourceTable::AddNode(NodeId node, Labels labels, const ResourceMap& resources) {
  if (node == 0) return absl::InvalidArgumentError("node id 0 is reserved for \"no node\"");
  if (nodes_.contains(node)) return absl::AlreadyExistsError(absl::StrCat("node ", node, " is already registered"));
  FERRY_RETURN_IF_ERROR(ValidateLabels(labels));
  if (resources.size() > kMaxResourcesPerNode) {
    return absl::InvalidArgumentError(absl::StrCat("node ", node, " advertises ", resources.size(),
                                                   " resources, above the limit ", kMaxResourcesPerNode));
  }
  for (const auto& [name, amount] : resources) {
    FERRY_RETURN_IF_ERROR(ValidateResourceName(name));
    FERRY_RETURN_IF_ERROR(ValidateAmount(amount, absl::StrCat("node ", node, " capacity of '", name, "'")));
  }
  Node& n = nodes_[node];
  n.labels = std::move(labels);
  for (const auto& [key, value] : n.labels) labels_[key][value].insert(node);
  for (const auto& [name, amount] : resources) SetCapacity(node, n, Intern(name), amount);
  return absl::OkStatus();
}

absl::Status ResourceTable::RemoveNode(NodeId node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("node ", node, " is not registered"));
  for (const auto& [resource, slot] : it->second.slots) {
    if (slot.allocated > 0) {
      return absl::FailedPreconditionError(absl::StrCat("node ", node, " still has ", slot.allocated, " of '",
                                                        names_[resource], "' allocated"));
    }
  }
  std::vector<ResourceId> held;
  for (const auto& [resource, slot] : it->second.slots) held.push_back(resource);
  for (ResourceId r : held) SetCapacity(node, it->second, r, 0);
  for (const auto& [key, value] : it->second.labels) {
    auto k = labels_.find(key);
    auto v = k->second.find(value);
    v->second.erase(node);
    if (v->second.empty()) k->second.erase(v);
    if (k->second.empty()) labels_.erase(k);
  }
  nodes_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeId>> ResourceTable::SetResource(absl::string_view name, int64_t capacity,
                                                               const NodeSelector& selector) {
  FERRY_RETURN_IF_ERROR(ValidateResourceName(name));
  FERRY_RETURN_IF_ERROR(ValidateAmount(capacity, absl::StrCat("capacity of '", name, "'")));
  FERRY_ASSIGN_OR_RETURN(std::vector<NodeId> selected, Select(selector));
  if (selected.empty()) {
    return absl::NotFoundError(absl::StrCat("SetResource '", name, "': the selector matches no node"));
  }
  const std::optional<ResourceId> known = Find(name);
  if (known) {
    for (NodeId node : selected) {
      const int64_t allocated = Allocated(node, *known);
      if (allocated > capacity) {
        return absl::FailedPreconditionError(absl::StrCat("SetResource '", name, "' to ", capacity, ": node ", node,
                                                          " has ", allocated, " allocated (release it first)"));
      }
    }
  }
  const ResourceId id = Intern(name);
  for (NodeId node : selected) SetCapacity(node, nodes_[node], id, capacity);
  return selected;
}

absl::StatusOr<std::vector<NodeId>> ResourceTable::Select(const NodeSelector& selector) const {
  std::vector<NodeId> out;
  switch (selector.kind) {
    case NodeSelector::Kind::kNode:
      if (!nodes_.contains(selector.node)) {
        return absl::NotFoundError(absl::StrCat("selector names node ", selector.node, ", which is not registered"));
      }
      out.push_back(selector.node);
      return out;
    case NodeSelector::Kind::kLabels:
      if (selector.labels.empty()) return absl::InvalidArgumentError("label selector has no labels");
      FERRY_RETURN_IF_ERROR(ValidateLabels(selector.labels));
      for (const auto& [node, n] : nodes_) {
        bool all = true;
        for (const auto& [key, value] : selector.labels) {
          auto it = n.labels.find(key);
          all = all && it != n.labels.end() && it->second == value;
        }
        if (all) out.push_back(node);
      }
      std::sort(out.begin(), out.end());
      return out;
    case NodeSelector::Kind::kCoverFree:
      return SelectCoverFree(selector);
  }
  return absl::InvalidArgumentError("unknown selector kind");
}

absl::StatusOr<std::vector<NodeId>> ResourceTable::SelectCoverFree(const NodeSelector& selector) const {
  if (selector.cover.empty()) return absl::InvalidArgumentError("cover selector has no resources to cover");
  if (selector.max_nodes < 1) {
    return absl::InvalidArgumentError(absl::StrCat("cover selector wants up to ", selector.max_nodes,
                                                   " nodes; it must be at least 1"));
  }
  std::vector<Demand> demands;
  for (const auto& [name, amount] : selector.cover) {
    FERRY_RETURN_IF_ERROR(ValidateAmount(amount, absl::StrCat("cover amount of '", name, "'")));
    const std::optional<ResourceId> id = Find(name);
    if (!id || holders_[*id].empty()) {
      return absl::NotFoundError(absl::StrCat("cover selector names resource '", name, "', which no node has"));
    }
    demands.push_back({*id, amount});
  }
  // Scan the holders of the rarest resource only: every other node lacks it.
  const Demand* rarest = &demands[0];
  for (const Demand& d : demands) {
    if (holders_[d.resource].size() < holders_[rarest->resource].size()) rarest = &d;
  }
  std::vector<NodeId> out;
  for (const auto& [free, node] : holders_[rarest->resource]) {
    bool covers = true;
    for (const Demand& d : demands) covers = covers && Free(node, d.resource) >= d.amount;
    if (covers) out.push_back(node);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > static_cast<size_t>(selector.max_nodes)) out.resize(selector.max_nodes);
  return out;
}

absl::Status ResourceTable::Allocate(NodeId node, absl::Span<const Demand> demands) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("allocate on node ", node, ": not registered"));
  for (const Demand& d : demands) {
    auto s = it->second.slots.find(d.resource);
    const int64_t free = s == it->second.slots.end() ? 0 : s->second.capacity - s->second.allocated;
    if (d.amount > free) {
      return absl::ResourceExhaustedError(absl::StrCat("node ", node, " has ", free, " of '", names_[d.resource],
                                                       "' free; ", d.amount, " asked"));
    }
  }
  for (const Demand& d : demands) {
    Slot& s = it->second.slots[d.resource];
    const int64_t before = s.capacity - s.allocated;
    s.allocated += d.amount;
    Reindex(d.resource, node, before, before - d.amount);
  }
  return absl::OkStatus();
}

absl::Status ResourceTable::Release(NodeId node, absl::Span<const Demand> demands) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return absl::InternalError(absl::StrCat("release on node ", node, ": not registered"));
  for (const Demand& d : demands) {
    auto s = it->second.slots.find(d.resource);
    if (s == it->second.slots.end() || s->second.allocated < d.amount) {
      return absl::InternalError(absl::StrCat("release of ", d.amount, " '", names_[d.resource], "' on node ", node,
                                              ": more than is allocated"));
    }
  }
  for (const Demand& d : demands) {
    Slot& s = it->second.slots[d.resource];
    const int64_t before = s.capacity - s.allocated;
    s.allocated -= d.amount;
    Reindex(d.resource, node, before, before + d.amount);
  }
  return absl::OkStatus();
}

std::optional<ResourceId> ResourceTable::Find(absl::string_view name) const {
  auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

ResourceId ResourceTable::Intern(absl::string_view name) {
  auto [it, added] = ids_.try_emplace(name, static_cast<ResourceId>(names_.size()));
  if (added) {
    names_.emplace_back(name);
    holders_.emplace_back();
    total_capacity_.push_back(0);
  }
  return it->second;
}

std::vector<NodeId> ResourceTable::NodeIds() const {
  std::vector<NodeId> out;
  out.reserve(nodes_.size());
  for (const auto& [node, n] : nodes_) out.push_back(node);
  std::sort(out.begin(), out.end());
  return out;
}

const ResourceTable::Slot* ResourceTable::FindSlot(NodeId node, ResourceId resource) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return nullptr;
  auto s = it->second.slots.find(resource);
  return s == it->second.slots.end() ? nullptr : &s->second;
}

int64_t ResourceTable::Capacity(NodeId node, ResourceId resource) const {
  const Slot* s = FindSlot(node, resource);
  return s ? s->capacity : 0;
}

int64_t ResourceTable::Allocated(NodeId node, ResourceId resource) const {
  const Slot* s = FindSlot(node, resource);
  return s ? s->allocated : 0;
}

int64_t ResourceTable::Free(NodeId node, ResourceId resource) const {
  const Slot* s = FindSlot(node, resource);
  return s ? s->capacity - s->allocated : 0;
}

const std::string* ResourceTable::Label(NodeId node, absl::string_view key) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return nullptr;
  auto l = it->second.labels.find(std::string(key));
  return l == it->second.labels.end() ? nullptr : &l->second;
}

std::vector<ResourceId> ResourceTable::ResourcesOf(NodeId node) const {
  std::vector<ResourceId> out;
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return out;
  for (const auto& [resource, slot] : it->second.slots) out.push_back(resource);
  std::sort(out.begin(), out.end());
  return out;
}

const std::map<std::string, std::set<NodeId>>* ResourceTable::LabelValues(absl::string_view key) const {
  auto it = labels_.find(key);
  return it == labels_.end() ? nullptr : &it->second;
}

std::vector<NodeResourcesView> ResourceTable::Snapshot() const {
  std::vector<NodeResourcesView> out;
  for (NodeId node : NodeIds()) {
    const Node& n = nodes_.at(node);
    NodeResourcesView v;
    v.node = node;
    v.labels = n.labels;
    for (const auto& [resource, slot] : n.slots) {
      v.resources[names_[resource]] = {slot.capacity, slot.capacity - slot.allocated};
    }
    out.push_back(std::move(v));
  }
  return out;
}

void ResourceTable::SetCapacity(NodeId node, Node& n, ResourceId resource, int64_t capacity) {
  auto it = n.slots.find(resource);
  if (it == n.slots.end()) {
    if (capacity == 0) return;
    n.slots[resource] = Slot{capacity, 0};
    holders_[resource].insert({capacity, node});
    total_capacity_[resource] += capacity;
    return;
  }
  Slot& s = it->second;
  holders_[resource].erase({s.capacity - s.allocated, node});
  total_capacity_[resource] += capacity - s.capacity;
  if (capacity == 0) {  // SetResource checked allocated <= capacity, so nothing is allocated
    n.slots.erase(it);
    return;
  }
  s.capacity = capacity;
  holders_[resource].insert({s.capacity - s.allocated, node});
}

void ResourceTable::Reindex(ResourceId resource, NodeId node, int64_t before, int64_t after) {
  FreeIndex& index = holders_[resource];
  index.erase({before, node});
  index.insert({after, node});
}

}  // namespace ferry::control::placement
