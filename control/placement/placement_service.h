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
// A holder learns of a lost lease (node death, expiry) from WatchLeases (pushed) and from its
// next Renew or Release, which fail NOT_FOUND with the reason ("lease 7 was lost: node n1 (42)
// died"); the service remembers the last kLostMemory lost lease ids for this.
//
// Restart (placement_rebuild.cc): the service has a random incarnation, carried by every lease,
// Renew and ReportLeases reply; a Renew or Release naming another incarnation is ABORTED. With
// options.rebuild > 0 it starts in PlacementManager's rebuild window: holders re-report their
// leases (ReportLeases), nothing is granted until the window closes (at its end, or once every
// holder listed in options.holders_file has reported), and an Acquire whose deadline falls
// inside the window is answered UNAVAILABLE.
//
// Threading: every public method may be called from any thread. One absl::Mutex, mu_, guards the
// manager and the table of waiting calls; gRPC calls are finished and watch streams written only
// after it is released (finishing may run gRPC reactions inline). One timer thread sleeps until
// the manager's NextDeadline (lease expiry, request deadlines, the rebuild's end) and runs
// Advance; Shutdown joins it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
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
#include "control/placement/holders_file.h"
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
  // The rebuild window at start (0: none, every lease of an earlier coordinator is lost).
  absl::Duration rebuild = absl::ZeroDuration();
  // Where the holders that have leases are recorded (empty: nowhere), so that a restarted
  // service can close its window once they all reported; an absent or empty file at start means
  // there is nothing to rebuild.
  std::string holders_file;
  uint64_t incarnation = 0;  // 0: random
};

class PlacementService final : public pb::Placement::CallbackService {
 public:
  // How many lost lease ids are remembered to explain a later Renew/Release.
  static constexpr size_t kLostMemory = 65536;
  // Most requests in one AcquireBatch / ReleaseBatch, and leases in one ReportLeases.
  static constexpr int kMaxBatch = 1024;
  static constexpr int kMaxReport = 4096;

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
  grpc::ServerUnaryReactor* ReportLeases(grpc::CallbackServerContext* ctx, const pb::ReportLeasesRequest* req,
                                         pb::ReportLeasesReply* reply) override;
  grpc::ServerWriteReactor<pb::LeaseEvent>* WatchLeases(grpc::CallbackServerContext* ctx,
                                                        const pb::WatchLeasesRequest* req) override;
  grpc::ServerUnaryReactor* AcquireBatch(grpc::CallbackServerContext* ctx, const pb::AcquireBatchRequest* req,
                                         pb::AcquireBatchReply* reply) override;
  grpc::ServerUnaryReactor* ReleaseBatch(grpc::CallbackServerContext* ctx, const pb::ReleaseBatchRequest* req,
                                         pb::ReleaseBatchReply* reply) override;

  uint64_t incarnation() const { return incarnation_; }

  // For static groups made from a gang grant (Coordinator::SetLeaseNodes): the distinct nodes of
  // lease `lease`'s bundles, in bundle order. NOT_FOUND (with why, if it was lost) for a lease
  // that is not held, PERMISSION_DENIED if `holder` is not its holder.
  absl::StatusOr<std::vector<NodeId>> LeaseNodes(LeaseId lease, const std::string& holder) ABSL_LOCKS_EXCLUDED(mu_);
  // Called, after mu_ is released, for every lease that ends (released, expired, lost with a
  // node), with why. Set it before the service serves; it must not call back into the service.
  using LeaseEndListener = std::function<void(LeaseId lease, const std::string& why)>;
  void SetLeaseEndListener(LeaseEndListener listener) { lease_ended_ = std::move(listener); }

 private:
  class PendingCall;  // a waiting Acquire or AcquireBatch (a reactor with request slots)
  class AcquireCall;
  class BatchCall;
  class LeaseWatch;   // one WatchLeases stream
  // Work to do after the unlock: calls to finish, events to write to watch streams.
  struct Answers {
    std::vector<std::pair<PendingCall*, absl::Status>> calls;
    std::vector<std::pair<std::shared_ptr<LeaseWatch>, pb::LeaseEvent>> events;
    std::vector<std::pair<LeaseId, std::string>> ended;   // for lease_ended_
  };
  // A waiting request: slot `slot` of `call`.
  struct Waiting {
    PendingCall* call = nullptr;
    size_t slot = 0;
  };

  // Converts and checks a request (no lock needed).
  [[nodiscard]] absl::StatusOr<PlacementRequest> PrepareRequest(const pb::AcquireRequest& req, absl::Time now) const;
  // Starts one request as slot `slot` of `call`: granted now (filled into its reply), failed
  // (`request` an error, or the manager's), or filed in waiting_.
  void StartOneLocked(absl::StatusOr<PlacementRequest> request, const std::string& holder, PendingCall* call,
                      size_t slot, absl::Time now, Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records slot `slot` of `call` ended with `status`; queues the call to finish once complete.
  void ResolveLocked(PendingCall* call, size_t slot, absl::Status status, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The client cancelled `call`: withdraw its waiting requests, give back what it was granted.
  void CancelCall(PendingCall* call) ABSL_LOCKS_EXCLUDED(mu_);
  [[nodiscard]] absl::Status ReleaseLocked(LeaseId lease, const std::string& holder, uint64_t incarnation,
                                           Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ABORTED when `incarnation` is neither 0 nor this service's.
  [[nodiscard]] absl::Status CheckIncarnation(LeaseId lease, uint64_t incarnation) const;
  // Delivers the manager's events: grants and failures to waiting calls, lost leases remembered.
  void HandleLocked(PlacementEvents events, Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RememberLostLocked(LeaseId lease, std::string reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NOT_FOUND naming why `lease` is gone if it was lost, else `status` unchanged.
  absl::Status ExplainLocked(LeaseId lease, absl::Status status) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillLeaseLocked(const Lease& lease, pb::Lease* out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NodeNameLocked(NodeId node) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveNodeLocked(NodeId node, const std::string& why, Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Holder bookkeeping for the holders file: a lease granted or restored to / gone from `holder`.
  void HeldLocked(const std::string& holder) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnheldLocked(const std::string& holder) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites the holders file if holders left it and it was last written over a second ago.
  void MaybeTrimHoldersLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteHoldersLocked(std::set<std::string> holders, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // placement_rebuild.cc: opens the window at construction.
  void StartRebuildLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Restores one reported lease, filling `out`.
  void ReportOneLocked(const LeaseReport& report, absl::Time now, pb::LeaseReportResult* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the window (early, or at its end from the timer) and delivers what that grants.
  void EndRebuildLocked(absl::Time now, const std::string& why, Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // placement_watch.cc: a lost lease, written to `holder`'s watch streams.
  void PushLossLocked(const std::string& holder, LeaseId lease, const std::string& reason, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A watch stream ended (OnDone): forget it; returns the last reference.
  std::shared_ptr<LeaseWatch> ForgetWatch(LeaseWatch* watch) ABSL_LOCKS_EXCLUDED(mu_);
  // The timer may have to wake earlier than it sleeps now.
  void WakeTimerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Completes the calls, writes the events and tells lease_ended_, outside mu_.
  void Finish(Answers& answers) ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes a unary call at once with `status`.
  static grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const absl::Status& status);
  // placement_watch.cc: writes answers.events to their streams; ends streams at shutdown.
  static void WriteEvents(Answers& answers);
  static void EndWatches(std::vector<std::shared_ptr<LeaseWatch>>& watches);
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const PlacementServiceOptions options_;
  const uint64_t incarnation_;
  LeaseEndListener lease_ended_;   // set before serving, then only read
  absl::Mutex mu_;
  absl::CondVar timer_cv_;  // signalled when the next deadline moves earlier, or at shutdown
  PlacementManager manager_ ABSL_GUARDED_BY(mu_);
  // Waiting requests by request id. A call is finished by whoever resolves its last slot.
  absl::flat_hash_map<RequestId, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  // Open watch streams by holder, and every stream until its OnDone (its owner).
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<LeaseWatch>>> watches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<LeaseWatch*, std::shared_ptr<LeaseWatch>> watch_owners_ ABSL_GUARDED_BY(mu_);
  // Leases held per holder, and the holders file (holders written there; some may hold none).
  absl::flat_hash_map<std::string, size_t> held_ ABSL_GUARDED_BY(mu_);
  HoldersFile holders_file_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> holders_written_ ABSL_GUARDED_BY(mu_);
  absl::Time holders_written_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time holders_warned_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Rebuild: holders of the previous incarnation that have not reported all their leases yet.
  std::set<std::string> rebuild_awaits_ ABSL_GUARDED_BY(mu_);
  bool awaits_known_ ABSL_GUARDED_BY(mu_) = false;  // the holders file was read: the window may end early
  size_t restored_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<NodeId, std::string> names_ ABSL_GUARDED_BY(mu_);
  // Lost leases and why, the oldest forgotten first past kLostMemory.
  absl::flat_hash_map<LeaseId, std::string> lost_ ABSL_GUARDED_BY(mu_);
  std::deque<LeaseId> lost_order_ ABSL_GUARDED_BY(mu_);
  absl::Time timer_sleeps_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;
};

}  // namespace ferry::control::placement
