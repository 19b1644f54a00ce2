#include "control/cluster/cluster.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "proto/membership_delta.h"
#include "spdlog/spdlog.h"

namespace ferry::control {
namespace {

grpc::Status Invalid(std::string msg) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(msg)); }

}  // namespace

grpc::Status Cluster::CheckHello(const proto::Hello& hello) const {
  const proto::NodeInfo& info = hello.node();
  if (!options_.token.empty() && hello.cluster_token() != options_.token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong or missing cluster token");
  }
  if (info.node_id() == 0) return Invalid("Hello.node.node_id must be non-zero");
  if (absl::Status s = ValidateNodeName(info.name()); !s.ok()) return Invalid(absl::StrCat("Hello.node.name: ", s.message()));
  if (info.dp_address().empty()) return Invalid("Hello.node.dp_address is empty");
  return grpc::Status::OK;
}

grpc::Status Cluster::Register(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello, absl::Time now,
                               Outbox* out) {
  const proto::NodeInfo& info = hello.node();
  for (const auto& [id, rec] : nodes_) {
    if (rec.info.alive() && id != info.node_id() && rec.info.name() == info.name()) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("node name '", info.name(), "' is in use by live node ", id));
    }
  }
  auto existing = nodes_.find(info.node_id());
  const bool was_declared_dead = existing != nodes_.end();   // dead, or about to be replaced below
  if (existing != nodes_.end() && existing->second.info.alive()) {
    // The same ferryd reconnecting before its old session was noticed as gone proves it
    // with its process secret; anyone else reusing a live id is refused, and the live node
    // is left alone (replacing it would declare it dead and its objects lost).
    if (hello.session_secret().empty() || hello.session_secret() != existing->second.session_secret) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("node id ", info.node_id(), " is in use by live node '",
                                       existing->second.info.name(), "' (another ferryd process)"));
    }
    MarkDead(info.node_id(), "replaced by a new session of the same ferryd", out);
  }
  NodeRecord& rec = nodes_[info.node_id()];
  rec.info = info;
  rec.info.set_alive(true);
  ++alive_;
  rec.last_seen = now;
  rec.session = session;
  rec.session_secret = hello.session_secret();
  rec.session_seq = ++session_counter_;
  session->node_id = info.node_id();
  session->seq = rec.session_seq;
  liveness_.Set(info.node_id(), now + options_.liveness_timeout);
  // The others learn of the node by one delta; the node itself gets Welcome and a snapshot at
  // that epoch, queued first on its new session, then whatever follows.
  FanOutDelta({rec.info}, {}, info.node_id(), out);
  proto::CoordMessage welcome;
  proto::Welcome* w = welcome.mutable_welcome();
  w->set_node_id(info.node_id());
  w->set_heartbeat_interval_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  w->set_liveness_timeout_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.liveness_timeout)));
  w->set_inline_max_bytes(options_.inline_max_bytes);
  w->set_was_declared_dead(was_declared_dead);
  auto welcome_msg = std::make_shared<const proto::CoordMessage>(std::move(welcome));
  QueueOne(info.node_id(), welcome_msg, welcome_msg->ByteSizeLong(), out);
  std::vector<const proto::NodeInfo*> live;
  live.reserve(alive_);
  for (const auto& [id, r] : nodes_) {
    if (r.info.alive()) live.push_back(&r.info);
  }
  auto snapshot = std::make_shared<const proto::CoordMessage>(proto::MembershipSnapshot(epoch_, live));
  QueueOne(info.node_id(), snapshot, snapshot->ByteSizeLong(), out);
  SettleOverflow(out);
  return grpc::Status::OK;
}

bool Cluster::IsCurrent(const NodeSession& session) const {
  auto it = nodes_.find(session.node_id);
  return it != nodes_.end() && it->second.session_seq == session.seq && it->second.info.alive();
}

bool Cluster::Heartbeat(const NodeSession& session, const proto::Heartbeat& hb, absl::Time now) {
  if (!IsCurrent(session)) return false;
  // Heartbeat figures update the node's record (ClusterStatus, the planner's link model);
  // they are not membership changes and nothing is pushed.
  NodeRecord& rec = nodes_[session.node_id];
  rec.last_seen = now;
  // A later deadline never moves the queue's head earlier: no wake-up is needed.
  liveness_.Set(session.node_id, now + options_.liveness_timeout);
  if (hb.bandwidth_bps() > 0) rec.info.set_bandwidth_bps(hb.bandwidth_bps());
  if (hb.latency_s() > 0) rec.info.set_latency_s(hb.latency_s());
  rec.info.set_arena_used(hb.arena_used());
  rec.info.set_objects(hb.objects());
  return true;
}

void Cluster::MarkDead(NodeId node, const std::string& why, Outbox* out) {
  MarkDeadOne(node, why, out);
  SettleOverflow(out);
}

void Cluster::MarkDeadOne(NodeId node, const std::string& why, Outbox* out) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || !it->second.info.alive()) return;
  NodeRecord& rec = it->second;
  rec.info.set_alive(false);
  --alive_;
  liveness_.Erase(node);
  if (rec.session != nullptr) out->cancel.push_back(std::move(rec.session));
  rec.session = nullptr;
  out->died.emplace_back(node, why);
  FanOutDelta({}, {node}, 0, out);
}

void Cluster::ExpireSilent(absl::Time now, Outbox* out) {
  for (NodeId id : liveness_.PopExpired(now)) {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || !it->second.info.alive()) continue;
    MarkDeadOne(id, absl::StrCat("no heartbeat for ", absl::FormatDuration(now - it->second.last_seen)), out);
  }
  SettleOverflow(out);
}

void Cluster::Queue(NodeId node, const OutQueue::Message& msg, size_t bytes, Outbox* out) {
  QueueOne(node, msg, bytes, out);
  SettleOverflow(out);
}

void Cluster::QueueOne(NodeId node, const OutQueue::Message& msg, size_t bytes, Outbox* out) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || !it->second.info.alive() || it->second.session == nullptr) return;
  std::string why;
  if (!it->second.session->Send(msg, bytes, &why)) {
    overflowed_.emplace_back(node, std::move(why));   // declared dead by SettleOverflow
    return;
  }
  out->kick.push_back(it->second.session);
}

void Cluster::FanOutDelta(const std::vector<proto::NodeInfo>& added, const std::vector<NodeId>& removed, NodeId joined,
                          Outbox* out) {
  proto::CoordMessage one = proto::MembershipDelta(++epoch_, added, removed);
  pending_.push_back(std::move(*one.mutable_membership()));
  if (joined != 0) joined_in_window_[joined] = epoch_;   // its snapshot is at this epoch
  const absl::Time now = absl::Now();
  if (now >= last_flush_ + options_.delta_coalesce) FlushDeltas(now, out);
}

void Cluster::FlushDeltas(absl::Time now, Outbox* out) {
  if (pending_.empty()) return;
  last_flush_ = now;
  std::vector<const proto::Membership*> run;
  run.reserve(pending_.size());
  for (const proto::Membership& d : pending_) run.push_back(&d);
  auto wrap = [](proto::Membership m) {
    proto::CoordMessage msg;
    *msg.mutable_membership() = std::move(m);
    return std::make_shared<const proto::CoordMessage>(std::move(msg));
  };
  // One message for everyone (shared by every queue), unless one change is all there is.
  const OutQueue::Message shared = run.size() == 1 ? wrap(pending_.front()) : wrap(proto::MergeDeltas(run));
  const size_t bytes = shared->ByteSizeLong();
  for (auto& [id, rec] : nodes_) {
    if (!rec.info.alive() || rec.session == nullptr || joined_in_window_.contains(id)) continue;
    QueueOne(id, shared, bytes, out);
  }
  // A node that registered within the window holds a snapshot at its epoch: it gets the rest.
  const uint64_t first = pending_.front().epoch();
  for (const auto& [id, snapshot_epoch] : joined_in_window_) {
    if (snapshot_epoch >= epoch_) continue;
    std::vector<const proto::Membership*> tail(run.begin() + static_cast<ptrdiff_t>(snapshot_epoch + 1 - first), run.end());
    OutQueue::Message msg = tail.size() == 1 ? wrap(*tail.front()) : wrap(proto::MergeDeltas(tail));
    QueueOne(id, msg, msg->ByteSizeLong(), out);
  }
  pending_.clear();
  joined_in_window_.clear();
}

void Cluster::SettleOverflow(Outbox* out) {
  // Nodes whose queues overflowed die here, each death one more delta (sent in this order);
  // each death removes a live node, so this ends.
  while (!overflowed_.empty()) {
    auto [node, why] = overflowed_.back();
    overflowed_.pop_back();
    MarkDeadOne(node, why, out);
  }
}

std::vector<std::shared_ptr<NodeSession>> Cluster::Sessions() const {
  std::vector<std::shared_ptr<NodeSession>> out;
  for (const auto& [id, rec] : nodes_) {
    if (rec.session != nullptr) out.push_back(rec.session);
  }
  return out;
}

bool Cluster::Alive(NodeId node) const {
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.info.alive();
}

std::vector<NodeId> Cluster::LiveNodes() const {
  std::vector<NodeId> out;
  out.reserve(alive_);
  for (const auto& [id, rec] : nodes_) {
    if (rec.info.alive()) out.push_back(id);
  }
  return out;
}

const proto::NodeInfo* Cluster::Info(NodeId node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : &it->second.info;
}

std::vector<const proto::NodeInfo*> Cluster::AllSorted() const {
  std::vector<const proto::NodeInfo*> infos;
  infos.reserve(nodes_.size());
  for (const auto& [id, rec] : nodes_) infos.push_back(&rec.info);
  std::sort(infos.begin(), infos.end(), [](auto* a, auto* b) { return a->name() < b->name(); });
  return infos;
}

LinkModel Cluster::MeasuredLink(const LinkModel& fallback) const {
  std::vector<double> bw, lat;
  for (const auto& [id, rec] : nodes_) {
    if (!rec.info.alive()) continue;
    if (rec.info.bandwidth_bps() > 0) bw.push_back(rec.info.bandwidth_bps());
    if (rec.info.latency_s() > 0) lat.push_back(rec.info.latency_s());
  }
  LinkModel link = fallback;
  if (!bw.empty()) {
    std::nth_element(bw.begin(), bw.begin() + bw.size() / 2, bw.end());
    link.bandwidth_Bps = bw[bw.size() / 2];
  }
  // Per-hop latency is a property of the network: the best any node measured. A node's own
  // figure is already the minimum of its samples, and what still differs between nodes is
  // contention (measured here: 10 us to 15 ms across 8 nodes). The median of that would make
  // the model trade a chain for a wide tree, which costs the uplink far more than it saves.
  if (!lat.empty()) link.latency_s = *std::min_element(lat.begin(), lat.end());
  return link;
}

}  // namespace ferry::control
