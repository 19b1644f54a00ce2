// PlacementService: ferry-coord's gRPC Placement service (proto/placement.proto, docs/protocol.md
// "Placement service"), an adaptor around one PlacementManager.
//
// It validates and converts every request, calls the manager under its own lock, and delivers
// the events the manager returns: a waiting Acquire is answered when granted, when it can never
// be (FAILED_PRECONDITION) or at its deadline (DEADLINE_EXCEEDED). Acquire runs on gRPC's
// callback API: a waiting call is a ServerUnaryReactor filed under its request id, with no
// thread of its own; its client's cancellation withdraws the request.
//
// Nodes come from the coordinator's membership (OnMembership, wired in coord_main.cc through
// Coordinator::SetMembershipListener): a registering node is added with the resources and labels
// it advertised (NodeInfo.resources / labels); a dead one is removed, and its leases with it.
// A holder learns of a lost lease (node death, expiry) from its next Renew or Release, which
// fails NOT_FOUND with the reason ("lease 7 was lost: node n1 (42) died"); the service remembers
// the last kLostMemory lost lease ids for this.
//
// Threading: every public method may be called from any thread. One absl::Mutex, mu_, guards the
// manager and the table of waiting calls; gRPC calls are finished only after it is released
// (finishing may run gRPC reactions inline). One timer thread sleeps until the manager's
// NextDeadline (lease expiry, request deadlines) and runs Advance; Shutdown joins it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/placement/placement_manager.h"
#include "proto/common.pb.h"
#include "proto/placement.grpc.pb.h"

namespace ferry::control::placement {

namespace pb = ::ferry::proto::placement;

struct PlacementServiceOptions {
  absl::Duration max_wait = absl::Hours(1);            // cap on (and default for) Acquire's timeout
  absl::Duration default_ttl = absl::Seconds(30);      // a lease's ttl when the request gives 0
  absl::Duration max_ttl = absl::Hours(24);
  size_t max_waiters = 100000;
};

class PlacementService final : public pb::Placement::CallbackService {
 public:
  // How many lost lease ids are remembered to explain a later Renew/Release.
  static constexpr size_t kLostMemory = 65536;

  explicit PlacementService(PlacementServiceOptions options = {});
  ~PlacementService() override;
  PlacementService(const PlacementService&) = delete;
  PlacementService& operator=(const PlacementService&) = delete;

  // Ends every waiting Acquire (UNAVAILABLE) and joins the timer thread. Idempotent; RPCs after
  // it answer UNAVAILABLE.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Membership: `alive` adds the node (replacing an incarnation still present), else removes it
  // with its leases. Bad advertised resources or labels are logged and skipped (the node is
  // added with the rest), never fatal: membership is the coordinator's, not ours.
  void OnMembership(const proto::NodeInfo& node, bool alive) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds a node directly (tests and perf/placement_bench's simulated nodes).
  [[nodiscard]] absl::Status AddNode(NodeId node, std::string name, Labels labels, const ResourceMap& resources)
      ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerUnaryReactor* SetResource(grpc::CallbackServerContext* ctx, const pb::SetResourceRequest* req,
                                        pb::SetResourceReply* reply) override;
  grpc::ServerUnaryReactor* ClusterResources(grpc::CallbackServerContext* ctx,
                                             const pb::ClusterResourcesRequest* req,
                                             pb::ClusterResourcesReply* reply) override;
  grpc::ServerUnaryReactor* Acquire(grpc::CallbackServerContext* ctx, const pb::AcquireRequest* req,
                                    pb::AcquireReply* reply) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* ctx, const pb::ReleaseRequest* req,
                                    pb::ReleaseReply* reply) override;
  grpc::ServerUnaryReactor* Renew(grpc::CallbackServerContext* ctx, const pb::RenewRequest* req,
                                  pb::RenewReply* reply) override;
  grpc::ServerUnaryReactor* ListLeases(grpc::CallbackServerContext* ctx, const pb::ListLeasesRequest* req,
                                       pb::ListLeasesReply* reply) override;

 private:
  class AcquireCall;  // a waiting Acquire's reactor
  // Calls to finish after the unlock.
  struct Answers {
    std::vector<std::pair<AcquireCall*, absl::Status>> calls;
  };

  // Files a queued call, or answers it now; returns the reactor.
  grpc::ServerUnaryReactor* StartAcquire(grpc::CallbackServerContext* ctx, const pb::AcquireRequest* req,
                                         pb::AcquireReply* reply) ABSL_LOCKS_EXCLUDED(mu_);
  // The client cancelled `call` (waiting under `request`): withdraw it.
  void CancelCall(RequestId request, AcquireCall* call) ABSL_LOCKS_EXCLUDED(mu_);
  // Delivers the manager's events: grants and failures to waiting calls, lost leases remembered.
  void HandleLocked(PlacementEvents events, Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RememberLostLocked(LeaseId lease, std::string reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NOT_FOUND naming why `lease` is gone if it was lost, else `status` unchanged.
  absl::Status ExplainLocked(LeaseId lease, absl::Status status) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillLeaseLocked(const Lease& lease, pb::Lease* out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NodeNameLocked(NodeId node) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveNodeLocked(NodeId node, const std::string& why, Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The timer may have to wake earlier than it sleeps now.
  void WakeTimerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Finish(Answers& answers);
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const PlacementServiceOptions options_;
  absl::Mutex mu_;
  absl::CondVar timer_cv_;  // signalled when the next deadline moves earlier, or at shutdown
  PlacementManager manager_ ABSL_GUARDED_BY(mu_);
  // Waiting Acquire calls by request id. A call is finished by whoever removes it from here.
  absl::flat_hash_map<RequestId, AcquireCall*> waiting_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<NodeId, std::string> names_ ABSL_GUARDED_BY(mu_);
  // Lost leases and why, the oldest forgotten first past kLostMemory.
  absl::flat_hash_map<LeaseId, std::string> lost_ ABSL_GUARDED_BY(mu_);
  std::deque<LeaseId> lost_order_ ABSL_GUARDED_BY(mu_);
  absl::Time timer_sleeps_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;
};

}  // namespace ferry::control::placement
