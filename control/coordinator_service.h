// ferry-coord's gRPC service: membership and liveness, the object directory, broadcast
// planning and explicit broadcasts. All coordinator state is soft: after a restart every
// ferryd re-registers and re-reports what it holds.
//
// Threading: gRPC handler threads call in concurrently. One mutex guards membership, the
// directory and broadcasts; waits (AcquireSource, Locate, Broadcast) sleep on one condition
// variable that every state change signals. Messages to nodes are written outside the lock
// (each node's stream has its own write mutex). A reaper thread enforces liveness.
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
#include "proto/coordinator.grpc.pb.h"

namespace ferry::control {

struct CoordinatorOptions {
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  absl::Duration liveness_timeout = absl::Seconds(3);
  absl::Duration max_wait = absl::Hours(1);   // cap on any client-supplied timeout
  absl::Duration drop_ack_wait = absl::Seconds(5);   // how long Delete waits for holders' DropDone
  uint32_t inline_max_bytes = 64 * 1024;
  std::string token;                          // cluster token; empty = none required
  LinkModel default_link;                     // until nodes report measurements
  PlanLimits limits;
};

class CoordinatorService final : public proto::Coordinator::Service {
 public:
  explicit CoordinatorService(CoordinatorOptions options);
  ~CoordinatorService() override;

  grpc::Status Session(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<proto::CoordMessage, proto::NodeMessage>* stream) override;
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
  using Stream = grpc::ServerReaderWriter<proto::CoordMessage, proto::NodeMessage>;
  // One session's stream, shared by everyone who may write to it. Writers hold `mu` and
  // write only while `open`; the session handler closes it (under `mu`) before returning,
  // so no write ever touches a stream whose handler has finished.
  struct StreamSlot {
    std::mutex mu;
    Stream* stream ABSL_GUARDED_BY(mu) = nullptr;
    bool open ABSL_GUARDED_BY(mu) = false;
  };
  struct NodeRecord {
    proto::NodeInfo info;
    absl::Time last_seen;
    grpc::ServerContext* ctx = nullptr;   // the live session, or null
    std::shared_ptr<StreamSlot> slot;        // the live session's stream, or null
    uint64_t session_seq = 0;
    std::string session_secret;              // Hello.session_secret of the live session
  };
  struct Outgoing {
    std::shared_ptr<StreamSlot> slot;
    proto::CoordMessage msg;
  };
  struct BroadcastState {
    proto::ObjectRef ref;
    std::map<NodeId, std::string> failed;   // target -> why
  };

  grpc::Status Register(grpc::ServerContext* ctx, const std::shared_ptr<StreamSlot>& slot, const proto::Hello& hello,
                        uint64_t* seq);
  void MarkDeadLocked(NodeId node, const std::string& why, std::vector<Outgoing>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MembershipLocked(std::vector<Outgoing>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
                  std::vector<Outgoing>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AliveLocked(NodeId node) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time DeadlineFrom(uint32_t timeout_ms) const;
  void Send(std::vector<Outgoing> out);
  void ReaperLoop();

  const CoordinatorOptions options_;
  std::mutex mu_;
  // Signalled on every change of membership, directory or broadcast state.
  std::condition_variable changed_;
  absl::flat_hash_map<NodeId, NodeRecord> nodes_ ABSL_GUARDED_BY(mu_);
  Directory directory_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, BroadcastState> broadcasts_ ABSL_GUARDED_BY(mu_);
  uint64_t next_broadcast_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Deletes waiting for DropDone: op id -> live holders that have not answered yet.
  std::map<uint64_t, std::set<NodeId>> pending_drops_ ABSL_GUARDED_BY(mu_);
  uint64_t next_drop_op_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t membership_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t session_counter_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> acquires_{0}, transfers_completed_{0}, sender_failures_{0}, nodes_died_{0};
  std::thread reaper_;
};

}  // namespace ferry::control
