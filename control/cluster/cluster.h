// Cluster: membership and liveness. The node table (what each node registered with, its live
// session, its last heartbeat), the membership epoch and the deltas that announce each change,
// and the liveness deadlines (a DeadlineQueue: the next node to expire is at its head).
//
// It only decides and queues: messages go onto the nodes' own session queues (NodeSession::Send)
// and what must happen after the coordinator's lock is released (kick a session's writer,
// cancel a session) is left in the Outbox. A node declared dead here is also listed in
// Outbox::died, so that the coordinator settles what else depended on it (the directory's
// copies, operations, waiting calls).
//
// Threading: no lock of its own. Every method is called under the Coordinator's lock
// (control/coordinator.h), which guards the whole object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "control/cluster/cluster_view.h"
#include "control/cluster/deadline_queue.h"
#include "control/cluster/node_session.h"
#include "control/planner/cost_model.h"
#include "proto/coordinator.pb.h"

namespace ferry::control {

struct ClusterOptions {
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  absl::Duration liveness_timeout = absl::Seconds(3);
  uint32_t inline_max_bytes = 64 * 1024;   // told to nodes in Welcome
  std::string token;                        // cluster token; empty = none required
  // Membership deltas leave at most once per this interval: a change after a quiet interval
  // goes out at once; changes within one interval of the last send (a registration storm)
  // are merged into one delta, sent to every node as one shared message when the interval
  // ends (FlushDeltas). Zero: every change goes out at once, one delta each.
  absl::Duration delta_coalesce = absl::ZeroDuration();
};

// What a locked section leaves for after the unlock. Sessions are never called into under the
// coordinator's lock (gRPC may run their reactions inline).
struct Outbox {
  std::vector<std::shared_ptr<NodeSession>> kick;     // queues got messages: start their writers
  std::vector<std::shared_ptr<NodeSession>> cancel;   // sessions to end
  // Nodes declared dead in this section, in order, with why; the coordinator settles each.
  std::vector<std::pair<NodeId, std::string>> died;
};

class Cluster final : public ClusterView {
 public:
  explicit Cluster(ClusterOptions options) : options_(std::move(options)) {}

  // Validates a Hello: token, id, name, address (UNAUTHENTICATED / INVALID_ARGUMENT).
  grpc::Status CheckHello(const proto::Hello& hello) const;
  // Registers the node of an accepted session (Hello already checked): refuses a live node's
  // name or id (ALREADY_EXISTS) unless it is that ferryd's own reconnection (same secret), which
  // replaces the old session (declared dead first). On success the others get a delta and the
  // node gets Welcome and a snapshot, queued first on its session; `now` starts its liveness.
  grpc::Status Register(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello, absl::Time now,
                        Outbox* out);
  // A heartbeat on `session`: updates the record and the liveness deadline. False if the
  // session is no longer the node's live one (the caller ends it).
  bool Heartbeat(const NodeSession& session, const proto::Heartbeat& hb, absl::Time now);
  // Whether `session` is the node's current one (its end then means the node is gone).
  bool IsCurrent(const NodeSession& session) const;
  // Declares `node` dead (nothing if it is not alive): cancels its session, sends a delta
  // removing it to every other live node, lists it in out->died.
  void MarkDead(NodeId node, const std::string& why, Outbox* out);
  // Queues `msg` (`bytes`: its serialized size) to `node` if it has a live session. A node whose
  // queue overflows is declared dead (and the others get that delta).
  void Queue(NodeId node, const OutQueue::Message& msg, size_t bytes, Outbox* out);

  // The earliest liveness deadline (InfiniteFuture if no node is alive).
  absl::Time NextExpiry() const { return liveness_.Next(); }
  // When FlushDeltas must run next (InfiniteFuture if no delta waits).
  absl::Time NextDeltaFlush() const {
    return pending_.empty() ? absl::InfiniteFuture() : last_flush_ + options_.delta_coalesce;
  }
  // Sends the deltas that wait (ClusterOptions::delta_coalesce) as one merged delta to every
  // live node; a node that registered meanwhile gets only what follows its snapshot.
  void FlushDeltas(absl::Time now, Outbox* out);
  // Declares dead every node whose deadline passed by `now` ("no heartbeat for ...").
  void ExpireSilent(absl::Time now, Outbox* out);

  // Every session, for shutdown.
  std::vector<std::shared_ptr<NodeSession>> Sessions() const;

  // ClusterView.
  bool Alive(NodeId node) const override;
  std::vector<NodeId> LiveNodes() const override;
  const proto::NodeInfo* Info(NodeId node) const override;

  uint64_t AliveCount() const { return alive_; }
  uint64_t epoch() const { return epoch_; }
  // Every node ever registered (dead ones included), sorted by name.
  std::vector<const proto::NodeInfo*> AllSorted() const;
  // The link model for planning, from what live nodes measured (`fallback` where nothing is).
  LinkModel MeasuredLink(const LinkModel& fallback) const;

 private:
  struct NodeRecord {
    proto::NodeInfo info;
    absl::Time last_seen;
    std::shared_ptr<NodeSession> session;   // the live session, or null
    uint64_t session_seq = 0;
    std::string session_secret;              // Hello.session_secret of the live session
  };
  // One membership change at the next epoch. It goes to every live session but `joined` (a
  // node registering now, which gets a snapshot at this epoch instead): at once, or merged
  // with the changes that follow within delta_coalesce (FlushDeltas).
  void FanOutDelta(const std::vector<proto::NodeInfo>& added, const std::vector<NodeId>& removed, NodeId joined,
                   Outbox* out);
  // MarkDead without settling overflow.
  void MarkDeadOne(NodeId node, const std::string& why, Outbox* out);
  // Queues without settling overflow (see overflowed_).
  void QueueOne(NodeId node, const OutQueue::Message& msg, size_t bytes, Outbox* out);
  // Declares dead the nodes whose queues overflowed.
  void SettleOverflow(Outbox* out);

  const ClusterOptions options_;
  absl::flat_hash_map<NodeId, NodeRecord> nodes_;
  DeadlineQueue<NodeId> liveness_;   // live nodes: last heartbeat + liveness timeout
  uint64_t alive_ = 0;
  uint64_t epoch_ = 0;   // of the newest delta (sent or waiting)
  // Deltas not sent yet (each one change, epochs consecutive), when they started to wait, and
  // the nodes that registered meanwhile with the epoch of their snapshot.
  std::vector<proto::Membership> pending_;
  absl::Time last_flush_ = absl::InfinitePast();
  absl::flat_hash_map<NodeId, uint64_t> joined_in_window_;
  uint64_t session_counter_ = 0;
  // Nodes whose queue overflowed in QueueOne, declared dead by SettleOverflow.
  std::vector<std::pair<NodeId, std::string>> overflowed_;
};

}  // namespace ferry::control
