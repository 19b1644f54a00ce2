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
// ttl: the holder learns it from Renew or Release, which fail NOT_FOUND naming the reason, and,
// with options.watch, at once (on_loss, WaitLoss).
//
// Coordinator restart: the client remembers the leases it was granted. When the coordinator
// answers ABORTED (a new incarnation) or a watch stream reconnects to a new incarnation, it
// re-reports them (ReportLeases) until each is restored or refused; refused ones are lost
// (on_loss / WaitLoss), and the call that met ABORTED is retried once. Ephemeral resources this
// client created with SetResource on a node id selector are set again first (they live in the
// coordinator only); resources created on label or cover selectors are set again on the nodes
// they landed on.
//
// Thread-safety: a PlacementClient may be used from several threads at once; Acquire blocks
// its caller only. on_loss runs on the client's background thread or on the thread of the call
// that found the loss; it must not call back into the client.
#pragma once

#include <cstdint>
#include <functional>
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
  uint64_t incarnation = 0;          // the coordinator incarnation that granted (or restored) it
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

// A lease that ended without its holder releasing it.
struct LostPlacementLease {
  uint64_t lease_id = 0;
  std::string reason;  // "lease 7 of 'trainer' was lost: node n1 (42) died", "... not restored: ..."
};

struct PlacementClientOptions {
  absl::Duration connect_timeout = absl::Seconds(5);
  // Renew every held lease in the background at a third of its ttl (re-reporting it after a
  // coordinator restart). Without it the caller renews.
  bool auto_renew = false;
  // Keep a WatchLeases stream open: lost leases arrive at once, and a coordinator restart is
  // noticed when the stream reconnects (the leases are re-reported then).
  bool watch = false;
  // Each lost lease, once (also queued for WaitLoss).
  std::function<void(const LostPlacementLease&)> on_loss;
};

// What re-reporting the held leases found (PlacementClient::ReportLeases).
struct PlacementReport {
  uint64_t incarnation = 0;
  std::vector<uint64_t> restored;
  std::vector<LostPlacementLease> refused;  // lost (also on_loss / WaitLoss)
  std::vector<uint64_t> not_yet;            // a node or resource not back yet: report again
  bool rebuilding = false;                  // the coordinator's rebuild window is still open
};

class PlacementStub;         // sdk/: the gRPC channel
struct PlacementClientState; // sdk/: held leases, losses, background threads

class PlacementClient {
 public:
  // Connects to ferry-coord at `coord_address` ("host:port") as `holder` (the id leases are
  // granted to; 1..256 characters). UNAVAILABLE if the coordinator does not answer within
  // `connect_timeout`; INVALID_ARGUMENT for an empty address or a bad holder.
  static absl::StatusOr<std::unique_ptr<PlacementClient>> Connect(const std::string& coord_address,
                                                                  std::string holder,
                                                                  absl::Duration connect_timeout = absl::Seconds(5));
  static absl::StatusOr<std::unique_ptr<PlacementClient>> Connect(const std::string& coord_address,
                                                                  std::string holder,
                                                                  PlacementClientOptions options);
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

  // Many independent requests in one call (1..1024), each with its own outcome, in order; the
  // call returns when every one is granted or failed (each waits up to its own timeout). The
  // outer status fails only when the call itself does (bad batch size, coordinator unreachable).
  [[nodiscard]] absl::StatusOr<std::vector<absl::StatusOr<PlacementLease>>> AcquireBatch(
      const std::vector<PlacementRequest>& requests);
  // Releases 1..1024 of this holder's leases; one status per lease, in order.
  [[nodiscard]] absl::StatusOr<std::vector<absl::Status>> ReleaseBatch(const std::vector<uint64_t>& lease_ids);

  // Re-reports every lease this client holds now (after a coordinator restart; the client does
  // it by itself on ABORTED and on a watch reconnect). One round: NOT_YET leases stay held here
  // and are reported again by the next round.
  [[nodiscard]] absl::StatusOr<PlacementReport> ReportLeases();
  // The next lost lease, waiting up to `timeout`; DEADLINE_EXCEEDED if none came.
  [[nodiscard]] absl::StatusOr<LostPlacementLease> WaitLoss(absl::Duration timeout);
  // The leases this client believes it holds (granted, not released or lost), ascending by id.
  std::vector<PlacementLease> HeldLeases() const;
  // The coordinator incarnation last seen (0 before any grant or report).
  uint64_t incarnation() const;

 private:
  PlacementClient(std::unique_ptr<PlacementStub> stub, std::string holder, PlacementClientOptions options);
  // Runs `call` with `lease`'s incarnation; on ABORTED re-reports (Recover) and runs it once more.
  absl::Status WithRecovery(uint64_t lease_id, const std::function<absl::Status(uint64_t incarnation)>& call);
  // Re-reports until no lease is NOT_YET (or `patience` passes).
  [[nodiscard]] absl::Status Recover(absl::Duration patience);
  void StartBackground();
  void RenewLoop();
  void WatchLoop();

  std::unique_ptr<PlacementStub> stub_;
  const std::string holder_;
  std::unique_ptr<PlacementClientState> state_;
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
