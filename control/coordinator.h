// Coordinator: ferry-coord's state and its wiring, behind the gRPC adaptor
// (control/service/coordinator_service.h). It owns
//   - Cluster (cluster/): membership, sessions, liveness deadlines;
//   - Directory (directory/): objects and their broadcast plans, and KeyWaiters;
//   - Operations (collectives/): the collective operations in progress (explicit broadcasts,
//     deletes), each with the Waiter of the call that started it;
//   - the waiting calls (Waiter) and their deadlines;
// and one thread, the timer, that sleeps until the earliest deadline of all (a node's liveness
// deadline or a waiting call's) and is woken only when that moves earlier or at shutdown.
//
// Locking: one absl::Mutex, mu_, guards all of the above (every member marked
// ABSL_GUARDED_BY(mu_)); the component classes have no lock of their own and are only called
// under it. No other lock is taken while mu_ is held except a NodeSession's own (inside
// NodeSession::Send, which takes nothing else), so there is no lock order to get wrong. What
// must happen outside mu_ is collected while it is held and done after unlocking (After):
// kicking a session's writer, cancelling a session, and answering calls (Waiter::Deliver), since
// gRPC may run reactions inline and those take mu_.
//
// Threading: every public method may be called from any thread (gRPC's callback threads); none
// blocks beyond mu_. Waiting operations return at once; their answer is delivered through the
// Waiter's reply callback, on whichever thread completes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/cluster/cluster.h"
#include "control/cluster/deadline_queue.h"
#include "control/cluster/node_session.h"
#include "control/collectives/collective.h"
#include "control/collectives/operations.h"
#include "control/directory/directory.h"
#include "control/directory/key_waiters.h"
#include "control/groups/group_table.h"
#include "control/waiter.h"
#include "proto/coordinator.pb.h"
#include "proto/group.pb.h"

namespace ferry::control {

struct CoordinatorOptions {
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  absl::Duration liveness_timeout = absl::Seconds(3);
  absl::Duration max_wait = absl::Hours(1);          // cap on any client-supplied timeout
  absl::Duration drop_ack_wait = absl::Seconds(5);   // how long Delete waits for holders' DropDone
  uint32_t inline_max_bytes = 64 * 1024;
  QueueLimits session_queue;                  // per node: past it the node is disconnected
  std::string token;                          // cluster token; empty = none required
  LinkModel default_link;                     // until nodes report measurements
  PlanLimits limits;
  // Membership deltas are merged over this interval during bursts (ClusterOptions::delta_coalesce).
  absl::Duration membership_coalesce = absl::Milliseconds(20);
};

class GroupCollective;

class Coordinator final : public SessionHost {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator() override;

  const CoordinatorOptions& options() const { return options_; }
  // Ends every waiting call (CANCELLED, or what each answers at shutdown), cancels node
  // sessions and joins the timer thread. Idempotent.
  void Shutdown();
  // Prometheus text exposition of the coordinator's counters.
  std::string MetricsText();

  // SessionHost (NodeSession's reactions).
  grpc::Status OnHello(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello) override;
  bool OnNodeMessage(NodeSession* session, const proto::NodeMessage& msg) override;
  void OnSessionEnd(NodeSession* session, const std::string& why) override;

  // Unary operations that answer at once. Requests are validated by the service (refs, names).
  [[nodiscard]] absl::Status Publish(const proto::PublishRequest& req);
  // Publishes every entry for req.node_id under one lock; the entries that fail are listed in
  // the reply (FAILED_PRECONDITION for all if the node is not registered).
  [[nodiscard]] absl::Status PublishBatch(const proto::PublishBatchRequest& req, proto::PublishBatchReply* reply);
  proto::ExistsReply Exists(const proto::ExistsRequest& req);
  [[nodiscard]] absl::Status Unpublish(const proto::UnpublishRequest& req);
  [[nodiscard]] absl::Status ReportTransfer(const proto::ReportTransferRequest& req);
  proto::ListReply List(const proto::ListRequest& req);
  proto::ClusterStatusReply ClusterStatus();
  // The Group RPC's create, remove and list verbs (groups/group_table.h); INVALID_ARGUMENT
  // for a request without one of them.
  [[nodiscard]] absl::Status GroupAdmin(const proto::GroupRequest& req, proto::GroupReply* reply);

  // Waiting operations. Each creates a Waiter for the call (not yet started): the caller keeps
  // it (to Cancel), then calls Start. `reply` must stay valid until `answer` has run; `answer`
  // runs exactly once, without mu_, maybe inside Start.
  std::shared_ptr<Waiter> AcquireSource(const proto::AcquireSourceRequest* req, proto::AcquireSourceReply* reply,
                                        Waiter::Reply answer);
  std::shared_ptr<Waiter> Locate(const proto::LocateRequest* req, proto::LocateReply* reply, Waiter::Reply answer);
  std::shared_ptr<Waiter> Broadcast(const proto::BroadcastRequest* req, proto::BroadcastReply* reply,
                                    Waiter::Reply answer);
  std::shared_ptr<Waiter> BroadcastBatch(const proto::BroadcastBatchRequest* req, proto::BroadcastBatchReply* reply,
                                         Waiter::Reply answer);
  std::shared_ptr<Waiter> Delete(const proto::DeleteRequest* req, proto::DeleteReply* reply, Waiter::Reply answer);
  std::shared_ptr<Waiter> DeleteBatch(const proto::DeleteBatchRequest* req, proto::DeleteBatchReply* reply,
                                      Waiter::Reply answer);
  // Reduce (all = false) or AllReduce of req->inputs into req->result (collectives/reduce.h).
  std::shared_ptr<Waiter> Reduce(const proto::ReduceRequest* req, proto::ReduceReply* reply, bool all,
                                 Waiter::Reply answer);
  // A static group's collective (collectives/group_collective.h), the Group RPC's
  // `collective` verb.
  std::shared_ptr<Waiter> RunGroupCollective(const proto::GroupCollectiveRequest* req,
                                             proto::GroupCollectiveReply* reply, Waiter::Reply answer);
  // Starts a waiting call returned above: answers it at once if it can, else files it.
  void Start(const std::shared_ptr<Waiter>& waiter);
  // The client cancelled the call (ServerUnaryReactor::OnCancel); nothing if it has completed.
  void Cancel(const std::shared_ptr<Waiter>& waiter);

  // Told of membership changes, outside mu_, on the thread that handled them: alive=true with
  // the Hello's NodeInfo once a node has registered, alive=false (NodeInfo carrying node_id
  // only) once it is declared dead. A reconnection is a death, then a registration. Set before
  // the service serves (not synchronised with the calls).
  using MembershipListener = std::function<void(const proto::NodeInfo&, bool alive)>;
  void SetMembershipListener(MembershipListener listener) { membership_listener_ = std::move(listener); }

  // Groups made from a gang grant (CreateGroupRequest.lease_id): `LeaseNodes` gives the distinct
  // nodes of a lease's bundles in bundle order (PlacementService::LeaseNodes), called outside
  // mu_. Set before the service serves. Without it such a create is FAILED_PRECONDITION.
  using LeaseNodes = std::function<absl::StatusOr<std::vector<NodeId>>(uint64_t lease, const std::string& holder)>;
  void SetLeaseNodes(LeaseNodes fn) { lease_nodes_ = std::move(fn); }
  // A placement lease ended (released, expired, lost): the groups made from it are revoked.
  void OnLeaseEnded(uint64_t lease, const std::string& why) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // CreateGroupRequest.lease_id resolved to node ids (outside mu_).
  [[nodiscard]] absl::StatusOr<proto::CreateGroupRequest> ResolveGroupLease(const proto::CreateGroupRequest& req) const;
  // What a locked section leaves for after the unlock.
  struct After {
    Outbox out;
    size_t deaths_settled = 0;                     // of out.died
    std::vector<std::shared_ptr<Waiter>> answers;  // completed calls to Deliver
  };
  class CoordWait;   // a Waiter of this coordinator (Begin registers it)
  class AcquireWait;
  class LocateWait;
  class OperationWait;

  void Deliver(After& after) ABSL_LOCKS_EXCLUDED(mu_);
  CollectiveContext ContextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time DeadlineFrom(uint32_t timeout_ms) const;
  // The cluster's measured link (for planning), read under mu_.
  LinkModel MeasuredLink() ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `ins` on the nodes' sessions.
  void SendLocked(const Instructions& ins, After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A group collective whose members all reported: records each member's result as a
  // complete copy in the directory, then ends its programs.
  void RecordGroupResultsLocked(GroupCollective& op, After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Settles every death in after->out.died not settled yet: the directory drops the node's
  // copies, every operation hears of it, every waiting call is polled. More deaths (queues
  // overflowing meanwhile) are settled in the same loop.
  void SettleLocked(After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `key` changed in the directory: its operations hear of it; its waiting calls are polled.
  void KeyChangedLocked(const Directory::Key& key, After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Polls one filed waiter (nothing if it is not filed or already done).
  void PollLocked(Waiter* waiter, After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A filed or starting waiter completed: unfile it and answer it after the unlock.
  void CompletedLocked(std::shared_ptr<Waiter> waiter, After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes what a registering node re-reported; a copy of a deleted incarnation is dropped.
  void ReportedHoldingsLocked(const proto::Hello& hello, After* after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ReportTransfer's work, for the RPC and for a report on a node's session.
  absl::Status ReportTransferLocked(const proto::ReportTransferRequest& req, After* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop();

  const CoordinatorOptions options_;
  absl::Mutex mu_;
  // Wakes the timer thread: the earliest deadline moved earlier, or shutdown.
  absl::CondVar timer_cv_;
  Cluster cluster_ ABSL_GUARDED_BY(mu_);
  Directory directory_ ABSL_GUARDED_BY(mu_);
  KeyWaiters key_waiters_ ABSL_GUARDED_BY(mu_);
  Operations operations_ ABSL_GUARDED_BY(mu_);
  GroupTable groups_ ABSL_GUARDED_BY(mu_);
  InFlightBatches batches_ ABSL_GUARDED_BY(mu_);   // the batch broadcasts' chains, for joiners
  // Filed waiting calls by Waiter::id, and their deadlines.
  absl::flat_hash_map<uint64_t, std::shared_ptr<Waiter>> waiting_ ABSL_GUARDED_BY(mu_);
  DeadlineQueue<uint64_t> call_deadlines_ ABSL_GUARDED_BY(mu_);
  uint64_t next_waiter_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool delta_flush_armed_ ABSL_GUARDED_BY(mu_) = false;   // the timer knows of waiting deltas
  std::atomic<uint64_t> acquires_{0}, transfers_completed_{0}, sender_failures_{0}, nodes_died_{0};
  std::thread timer_;
  MembershipListener membership_listener_;
  LeaseNodes lease_nodes_;
};

}  // namespace ferry::control
