// libferry placement: resources on nodes, gang requests and leases (docs/protocol.md
// "Placement service"). A PlacementClient talks to ferry-coord's Placement service directly
// (the coordinator's address, as ferryd does), not through the local ferryd: placement is
// cluster state that lives in the coordinator, and a scheduler may run on no ferry node.
//
//   auto pc = ferry::PlacementClient::Connect("coord:7700", "trainer-17");
//   // 8 bundles of one GPU each, all on one rack, else anywhere; wait up to a minute.
//   ferry::PlacementRequest req = ferry::Affinity(ferry::Bundles(8, {{"gpu", 1}}), "rack");
//   req.alternatives.push_back(ferry::Gang(ferry::Bundles(8, {{"gpu", 1}})).alternatives[0]);
//   req.timeout = absl::Minutes(1);
//   absl::StatusOr<ferry::PlacementLease> lease = (*pc)->Acquire(req);
//   ... renew within lease->ttl (Renew) while working; Release when done.
//
// Amounts are whole numbers in the resource's own unit (fractional GPUs in milli-units).
// A lease is lost when a node it has a bundle on dies, or when it is not renewed within its
// ttl: the holder learns it from Renew or Release, which fail NOT_FOUND naming the reason.
//
// Thread-safety: a PlacementClient may be used from several threads at once; Acquire blocks
// its caller only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry {

// resource name -> amount.
using ResourceAmounts = std::map<std::string, double>;

enum class PlacementConstraint { kNone, kSameNode, kDifferentNodes, kSameLabelValue };
enum class PlacementScoring { kPack, kSpread };

// One way to satisfy a request: bundles (each on one node) under a constraint.
struct PlacementAlternative {
  std::vector<ResourceAmounts> bundles;
  PlacementConstraint constraint = PlacementConstraint::kNone;
  std::string label_key;  // kSameLabelValue only: the label all bundles' nodes share ("rack")
};

struct PlacementRequest {
  std::vector<PlacementAlternative> alternatives;  // preference order; the first that fits wins
  int32_t priority = 0;                            // higher is served first
  absl::Duration timeout = absl::ZeroDuration();   // zero: wait until granted (the service caps it)
  absl::Duration lease_ttl = absl::ZeroDuration(); // zero: the service's default (30 s)
  PlacementScoring scoring = PlacementScoring::kPack;
};

struct LeasedBundle {
  uint64_t node_id = 0;
  std::string node_name;
  ResourceAmounts amounts;
};

struct PlacementLease {
  uint64_t id = 0;
  std::string holder;
  size_t alternative = 0;            // which alternative was granted
  std::vector<LeasedBundle> bundles; // in the request's bundle order
  absl::Duration ttl;
  absl::Time expiry;
  absl::Duration waited;             // time spent queued
};

struct NodeResources {
  struct Amounts {
    double capacity = 0;
    double available = 0;
  };
  uint64_t node_id = 0;
  std::string name;
  std::map<std::string, std::string> labels;
  std::map<std::string, Amounts> resources;
};

// Which nodes SetResource acts on.
struct ResourceSelector {
  enum class Kind { kNode, kLabels, kCoverFree };
  Kind kind = Kind::kNode;
  uint64_t node_id = 0;
  std::map<std::string, std::string> labels;
  ResourceAmounts cover;
  int64_t max_nodes = 0;

  static ResourceSelector Node(uint64_t node_id);
  static ResourceSelector WithLabels(std::map<std::string, std::string> labels);
  // Up to `max_nodes` nodes whose free amounts cover `cover`, lowest ids first.
  static ResourceSelector CoverFree(ResourceAmounts cover, int64_t max_nodes);
};

class PlacementStub;  // sdk/: the gRPC channel

class PlacementClient {
 public:
  // Connects to ferry-coord at `coord_address` ("host:port") as `holder` (the id leases are
  // granted to; 1..256 characters). UNAVAILABLE if the coordinator does not answer within
  // `connect_timeout`; INVALID_ARGUMENT for an empty address or a bad holder.
  static absl::StatusOr<std::unique_ptr<PlacementClient>> Connect(const std::string& coord_address,
                                                                  std::string holder,
                                                                  absl::Duration connect_timeout = absl::Seconds(5));
  ~PlacementClient();
  PlacementClient(const PlacementClient&) = delete;
  PlacementClient& operator=(const PlacementClient&) = delete;

  const std::string& holder() const { return holder_; }

  // Creates, resizes or (capacity 0) deletes resource `name` on the nodes `selector` picks;
  // returns them. All or nothing.
  [[nodiscard]] absl::StatusOr<std::vector<uint64_t>> SetResource(const std::string& name, double capacity,
                                                                  const ResourceSelector& selector);
  [[nodiscard]] absl::StatusOr<std::vector<NodeResources>> ClusterResources();
  // Blocks until granted, until the request can never be granted (FAILED_PRECONDITION naming
  // the demand), or until its timeout (DEADLINE_EXCEEDED).
  [[nodiscard]] absl::StatusOr<PlacementLease> Acquire(const PlacementRequest& request);
  // NOT_FOUND for an unknown or lost lease (the message says why), PERMISSION_DENIED for one
  // this holder does not hold.
  [[nodiscard]] absl::Status Release(uint64_t lease_id);
  // Returns the new expiry. Errors as Release.
  [[nodiscard]] absl::StatusOr<absl::Time> Renew(uint64_t lease_id);
  // This holder's leases (`all` = every holder's), ascending by id.
  [[nodiscard]] absl::StatusOr<std::vector<PlacementLease>> ListLeases(bool all = false);

 private:
  PlacementClient(std::unique_ptr<PlacementStub> stub, std::string holder);
  std::unique_ptr<PlacementStub> stub_;
  const std::string holder_;
};

// ---- policies (issue 16 item 3): requests built from bundles --------------------------------

// `n` copies of `bundle`.
std::vector<ResourceAmounts> Bundles(size_t n, const ResourceAmounts& bundle);
// All bundles or none, anywhere (bundles may share nodes).
PlacementRequest Gang(std::vector<ResourceAmounts> bundles);
// All bundles on nodes with one value of label `label_key` (one rack, one host).
PlacementRequest Affinity(std::vector<ResourceAmounts> bundles, std::string label_key);
// Every bundle on its own node.
PlacementRequest AntiAffinity(std::vector<ResourceAmounts> bundles);
// Anywhere, preferring the emptiest nodes and a node per bundle.
PlacementRequest Spread(std::vector<ResourceAmounts> bundles);
// Anywhere, filling the fullest nodes first (fewest nodes touched).
PlacementRequest Pack(std::vector<ResourceAmounts> bundles);
// `request` served at priority `priority` (higher first).
PlacementRequest Priority(PlacementRequest request, int32_t priority);
// Data locality: creates ephemeral resource `resource` with capacity `per_node` on each node of
// `nodes` (where the data is) and adds a demand of 1 of it to every bundle of every
// alternative, so the request lands only on those nodes. The resource stays until deleted
// (SetResource with capacity 0).
[[nodiscard]] absl::StatusOr<PlacementRequest> DataLocality(PlacementClient& client, PlacementRequest request,
                                                            const std::vector<uint64_t>& nodes,
                                                            const std::string& resource, double per_node);
// Rank order for a granted gang: a permutation of bundle indexes that keeps bundles on the same
// node adjacent (nodes in the order they first appear), so ranks r and r+1 share a node
// wherever possible. rank i is bundle result[i].
std::vector<size_t> RankOrderByNode(const PlacementLease& lease);

}  // namespace ferry
