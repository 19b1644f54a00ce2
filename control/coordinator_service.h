// ferry-coord's gRPC service: membership and liveness, the object directory, broadcast
// planning and explicit broadcasts. All coordinator state is soft: after a restart every
// ferryd re-registers and re-reports what it holds.
//
// Threading: node sessions run on gRPC's callback API (NodeSession: no thread per node); the
// unary RPCs run on gRPC's synchronous handler threads. One mutex guards membership, the
// directory and broadcasts. Messages to nodes are queued under it on each session's own
// queue (so they leave in the order the state changed) and written by that session's
// reactor after the lock is released (Outbox). Each waiting call (AcquireSource, Locate,
// Broadcast, Delete) sleeps on its own condition variable, woken by the change it waits for.
// A reaper thread enforces liveness.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "control/directory.h"
#include "control/node_session.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry::control {

struct CoordinatorOptions {
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  absl::Duration liveness_timeout = absl::Seconds(3);
  absl::Duration max_wait = absl::Hours(1);   // cap on any client-supplied timeout
  absl::Duration drop_ack_wait = absl::Seconds(5);   // how long Delete waits for holders' DropDone
  uint32_t inline_max_bytes = 64 * 1024;
  QueueLimits session_queue;                  // per node: past it the node is disconnected
  std::string token;                          // cluster token; empty = none required
  LinkModel default_link;                     // until nodes report measurements
  PlanLimits limits;
};

class CoordinatorService final : public proto::Coordinator::WithCallbackMethod_Session<proto::Coordinator::Service>,
                                 public SessionHost {
 public:
  explicit CoordinatorService(CoordinatorOptions options);
  ~CoordinatorService() override;

  grpc::ServerBidiReactor<proto::NodeMessage, proto::CoordMessage>* Session(
      grpc::CallbackServerContext* ctx) override;
  grpc::Status Publish(grpc::ServerContext* ctx, const proto::PublishRequest* req, proto::PublishReply* reply) override;
  grpc::Status Unpublish(grpc::ServerContext* ctx, const proto::UnpublishRequest* req, proto::UnpublishReply* reply) override;
  grpc::Status AcquireSource(grpc::ServerContext* ctx, const proto::AcquireSourceRequest* req,
                             proto::AcquireSourceReply* reply) override;
  grpc::Status ReportTransfer(grpc::ServerContext* ctx, const proto::ReportTransferRequest* req,
                              proto::ReportTransferReply* reply) override;
  grpc::Status Locate(grpc::ServerContext* ctx, const proto::LocateRequest* req, proto::LocateReply* reply) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const proto::DeleteRequest* req, proto::DeleteReply* reply) override;
  grpc::Status List(grpc::ServerContext* ctx, const proto::ListRequest* req, proto::ListReply* reply) override;
  grpc::Status ClusterStatus(grpc::ServerContext* ctx, const proto::ClusterStatusRequest* req,
                             proto::ClusterStatusReply* reply) override;
  grpc::Status Broadcast(grpc::ServerContext* ctx, const proto::BroadcastRequest* req,
                         proto::BroadcastReply* reply) override;

  // Stops the reaper and cancels node streams. Idempotent.
  void Shutdown();
  // Prometheus text exposition of the coordinator's counters.
  std::string MetricsText();

 private:
  struct NodeRecord {
    proto::NodeInfo info;
    absl::Time last_seen;
    std::shared_ptr<NodeSession> session;   // the live session, or null
    uint64_t session_seq = 0;
    std::string session_secret;              // Hello.session_secret of the live session
  };
  // What a locked section leaves for after the unlock: sessions whose queues got messages
  // (their writers are kicked) and sessions to end. Sessions are never called into under mu_.
  struct Outbox {
    std::vector<std::shared_ptr<NodeSession>> kick;
    std::vector<std::shared_ptr<NodeSession>> cancel;
  };
  // One waiting call; woken by the change it waits for.
  struct Waiter {
    std::condition_variable cv;
  };
  struct BroadcastState {
    proto::ObjectRef ref;
    std::map<NodeId, std::string> failed;   // target -> why
    std::condition_variable cv;               // its Broadcast call waits here
  };
  struct PendingDrop {
    std::set<NodeId> waiting;                 // live holders that have not sent DropDone
    std::condition_variable cv;               // its Delete call waits here
  };

  // SessionHost.
  grpc::Status OnHello(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello) override;
  bool OnNodeMessage(NodeSession* session, const proto::NodeMessage& msg) override;
  void OnSessionEnd(NodeSession* session, const std::string& why) override;

  grpc::Status CheckHello(const proto::Hello& hello) const;
  grpc::Status RegisterLocked(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReportedHoldingsLocked(const proto::Hello& hello, Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `msg` on the node's session (if it has one). A node whose queue overflows is
  // declared dead (which queues more deltas for the others).
  void QueueLocked(NodeId node, const OutQueue::Message& msg, size_t bytes, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One membership change: a delta at the next epoch to every live session but `skip`.
  void FanOutDeltaLocked(const std::vector<proto::NodeInfo>& added, const std::vector<NodeId>& removed, NodeId skip,
                         Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Declares dead the nodes whose queues overflowed in QueueLocked.
  void SettleOverflowLocked(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(Outbox& out);
  void WakeKeyLocked(const proto::ObjectRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeBroadcastsLocked(const proto::ObjectRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sleeps on `cv` until woken or `deadline`, at most kCancelCheck (see the .cc).
  void WaitLocked(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, absl::Time deadline);
  void MarkDeadLocked(NodeId node, const std::string& why, Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LinkModel MeasuredLinkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The AcquireSourceReply for a directory attachment (sender and its address, or the bytes).
  void SourceReplyLocked(AcquireResult r, proto::AcquireSourceReply* reply) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pre-plans an explicit broadcast's pull: attaches `target` and puts its sender in `pull`.
  void PlanPullLocked(NodeId target, const proto::ObjectRef& ref, proto::PullInstruction* pull)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The explicit targets of a Broadcast (NOT_FOUND naming an unknown one), or every live node.
  absl::StatusOr<std::vector<NodeId>> BroadcastTargetsLocked(const proto::BroadcastRequest& req) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t AliveCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a DropInstruction for `node` (if it has a live session).
  void DropLocked(NodeId node, const proto::ObjectRef& ref, uint64_t incarnation, uint64_t op_id,
                  Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AliveLocked(NodeId node) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time DeadlineFrom(uint32_t timeout_ms) const;
  void ReaperLoop();

  const CoordinatorOptions options_;
  std::mutex mu_;
  std::condition_variable reaper_cv_;   // wakes the reaper at shutdown
  absl::flat_hash_map<NodeId, NodeRecord> nodes_ ABSL_GUARDED_BY(mu_);
  Directory directory_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, BroadcastState> broadcasts_ ABSL_GUARDED_BY(mu_);
  // Calls waiting for a key to appear or a sender to free up (AcquireSource, Locate).
  std::map<Directory::Key, std::set<Waiter*>> key_waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_broadcast_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Deletes waiting for DropDone: op id -> live holders that have not answered yet.
  std::map<uint64_t, PendingDrop> pending_drops_ ABSL_GUARDED_BY(mu_);
  uint64_t next_drop_op_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t membership_epoch_ ABSL_GUARDED_BY(mu_) = 0;   // of the newest delta sent
  std::vector<std::pair<NodeId, std::string>> overflowed_ ABSL_GUARDED_BY(mu_);   // see QueueLocked
  uint64_t session_counter_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> acquires_{0}, transfers_completed_{0}, sender_failures_{0}, nodes_died_{0};
  std::thread reaper_;
};

}  // namespace ferry::control
