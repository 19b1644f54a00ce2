// ResourceTable: what every node has and what is allocated of it, for placement.
//
// A node advertises named resources ("gpu", "gpu_mem", "host_mem", "nic_bw", or any
// ephemeral resource an application creates with SetResource) and labels (host, rack,
// anything). Amounts are int64 in the resource's own unit; the table never interprets them.
// Convention for fractional resources: express them in milli-units (a node with 8 GPUs
// advertises gpu=8000 and a half-GPU bundle asks for gpu=500). Callers that receive amounts as
// floating point (a wire format) turn them into amounts with ParseAmount, which refuses
// negative, non-integer and out-of-range values.
//
// Invariant: for every node and resource, 0 <= allocated <= capacity. Allocate refuses what
// would break it; SetResource refuses to shrink a capacity below what is allocated.
//
// For matching, every resource keeps an index of the nodes that have it (capacity > 0), sorted
// by (free amount, node id): "the node with the least free gpu that still has 4" is one
// lower_bound, so a single-bundle match does not scan the cluster.
//
// Pure logic, no locking: the owner serialises calls (PlacementManager's owner).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/ids.h"

namespace ferry::control::placement {

// A resource name as the table numbers it (interned; stable for the table's life).
using ResourceId = uint32_t;
// resource name -> amount (a node's capacities, a bundle's demands). std::map: deterministic
// order and no duplicate names.
using ResourceMap = std::map<std::string, int64_t>;
// label key -> value.
using Labels = std::map<std::string, std::string>;

// An amount of one resource (a bundle's demand, a lease's holding).
struct Demand {
  ResourceId resource = 0;
  int64_t amount = 0;
  bool operator==(const Demand&) const = default;
};

// The most resources one node may advertise, and the longest name or label.
inline constexpr size_t kMaxResourcesPerNode = 100000;
inline constexpr size_t kMaxNameLength = 128;
// Largest amount: 2^53, so an amount survives a trip through a double (JSON, Python).
inline constexpr int64_t kMaxAmount = int64_t{1} << 53;

// Which nodes SetResource acts on.
struct NodeSelector {
  enum class Kind { kNode, kLabels, kCoverFree };
  Kind kind = Kind::kNode;
  NodeId node = 0;        // kNode: this node
  Labels labels;          // kLabels: nodes whose labels include every pair (non-empty)
  ResourceMap cover;      // kCoverFree: nodes whose free amounts cover all of these...
  int64_t max_nodes = 0;  // ...at most this many (>= 1), lowest node ids first

  static NodeSelector Node(NodeId node);
  static NodeSelector WithLabels(Labels labels);
  static NodeSelector CoverFree(ResourceMap cover, int64_t max_nodes);
};

// One node's view for ClusterResources.
struct NodeResourcesView {
  struct Amounts {
    int64_t capacity = 0;
    int64_t available = 0;
  };
  NodeId node = 0;
  Labels labels;
  std::map<std::string, Amounts> resources;
};

// Nodes holding one resource, sorted by (free amount, node id).
using FreeIndex = absl::btree_set<std::pair<int64_t, NodeId>>;

// Checks a resource name: 1..128 characters of [A-Za-z0-9_.:/-].
[[nodiscard]] absl::Status ValidateResourceName(absl::string_view name);
// Checks an amount: 0 <= amount <= kMaxAmount (`what` names it in the error).
[[nodiscard]] absl::Status ValidateAmount(int64_t amount, absl::string_view what);
// Converts a wire amount: refuses NaN, infinities, negatives, fractions and > kMaxAmount.
[[nodiscard]] absl::StatusOr<int64_t> ParseAmount(double value, absl::string_view what);

class ResourceTable {
 public:
  // Adds a node with its labels and advertised resources (amounts >= 0; 0 means absent).
  // INVALID_ARGUMENT for node 0, bad names or amounts; ALREADY_EXISTS if present.
  [[nodiscard]] absl::Status AddNode(NodeId node, Labels labels, const ResourceMap& resources);
  // Removes a node. NOT_FOUND if absent; FAILED_PRECONDITION if anything on it is still
  // allocated (release its leases first).
  [[nodiscard]] absl::Status RemoveNode(NodeId node);

  // Creates, resizes or (capacity 0) deletes resource `name` on every node `selector` picks.
  // All or nothing: INVALID_ARGUMENT for a bad name, capacity or selector; NOT_FOUND when the
  // selector matches no node (or names an unknown node or resource); FAILED_PRECONDITION when
  // a node has more allocated than `capacity`. Returns the nodes acted on, ascending.
  [[nodiscard]] absl::StatusOr<std::vector<NodeId>> SetResource(absl::string_view name, int64_t capacity,
                                                                const NodeSelector& selector);

  // Allocates every demand on `node`, all or none. NOT_FOUND for an unknown node;
  // RESOURCE_EXHAUSTED (naming the resource) if any demand exceeds what is free.
  [[nodiscard]] absl::Status Allocate(NodeId node, absl::Span<const Demand> demands);
  // Returns allocated amounts. INTERNAL if more is released than is allocated (a bookkeeping
  // bug; nothing is changed then).
  [[nodiscard]] absl::Status Release(NodeId node, absl::Span<const Demand> demands);

  // The id of `name`, interned or not yet (Intern adds it).
  std::optional<ResourceId> Find(absl::string_view name) const;
  ResourceId Intern(absl::string_view name);
  const std::string& Name(ResourceId id) const { return names_[id]; }
  size_t resource_count() const { return names_.size(); }

  bool HasNode(NodeId node) const { return nodes_.contains(node); }
  size_t node_count() const { return nodes_.size(); }
  // Every node id, ascending.
  std::vector<NodeId> NodeIds() const;
  // 0 for an unknown node or resource.
  int64_t Capacity(NodeId node, ResourceId resource) const;
  int64_t Allocated(NodeId node, ResourceId resource) const;
  int64_t Free(NodeId node, ResourceId resource) const;
  // The node's value of label `key`, or nullptr.
  const std::string* Label(NodeId node, absl::string_view key) const;
  // The resources `node` has (capacity > 0); empty for an unknown node.
  std::vector<ResourceId> ResourcesOf(NodeId node) const;

  // Nodes with resource `id` (capacity > 0), by (free, node id).
  const FreeIndex& Holders(ResourceId id) const { return holders_[id]; }
  // Sum of the capacities of `id` over all nodes.
  int64_t TotalCapacity(ResourceId id) const { return total_capacity_[id]; }
  // value -> nodes, for label `key` (nullptr if no node has it).
  const std::map<std::string, std::set<NodeId>>* LabelValues(absl::string_view key) const;

  // Capacity and availability of every node, ascending by node id.
  std::vector<NodeResourcesView> Snapshot() const;

 private:
  struct Slot {
    int64_t capacity = 0;
    int64_t allocated = 0;
  };
  struct Node {
    Labels labels;
    absl::flat_hash_map<ResourceId, Slot> slots;  // capacity > 0 only
  };

  const Slot* FindSlot(NodeId node, ResourceId resource) const;
  // Sets one slot's capacity (0 erases it) and keeps the indexes in step.
  void SetCapacity(NodeId node, Node& n, ResourceId resource, int64_t capacity);
  // Moves `node` in resource's index from free `before` to free `after`.
  void Reindex(ResourceId resource, NodeId node, int64_t before, int64_t after);
  [[nodiscard]] absl::StatusOr<std::vector<NodeId>> Select(const NodeSelector& selector) const;
  [[nodiscard]] absl::StatusOr<std::vector<NodeId>> SelectCoverFree(const NodeSelector& selector) const;

  absl::flat_hash_map<NodeId, Node> nodes_;
  std::vector<std::string> names_;                        // ResourceId -> name
  absl::flat_hash_map<std::string, ResourceId> ids_;      // name -> ResourceId
  std::vector<FreeIndex> holders_;                        // ResourceId -> holders by free
  std::vector<int64_t> total_capacity_;                   // ResourceId -> sum of capacities
  std::map<std::string, std::map<std::string, std::set<NodeId>>, std::less<>> labels_;  // key -> value -> nodes
};

}  // namespace ferry::control::placement
