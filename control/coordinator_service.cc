#include "control/coordinator_service.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "proto/membership_delta.h"
#include "proto/status_bridge.h"
#include "spdlog/spdlog.h"

namespace ferry::control {
namespace {

grpc::Status Invalid(std::string msg) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, msg); }

absl::Status CheckRef(const proto::ObjectRef& ref) { return ValidateObjectName(ref.ns(), ref.key()); }

std::string Name(const proto::ObjectRef& ref) { return PrintableName(ref.ns(), ref.key()); }

}  // namespace

// A waiting call notices its client's cancellation within this (gRPC's synchronous API has
// no cancellation callback); everything else it waits for wakes it at once.
constexpr absl::Duration kCancelCheck = absl::Seconds(1);

CoordinatorService::CoordinatorService(CoordinatorOptions options)
    : options_(std::move(options)),
      directory_(DirectoryOptions{options_.inline_max_bytes, options_.limits}) {
  reaper_ = std::thread([this] { ReaperLoop(); });
}

CoordinatorService::~CoordinatorService() { Shutdown(); }

void CoordinatorService::Shutdown() {
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [id, rec] : nodes_) {
      if (rec.session != nullptr) out.cancel.push_back(rec.session);
    }
    WakeAllLocked();
  }
  reaper_cv_.notify_all();
  Deliver(out);
  if (reaper_.joinable()) reaper_.join();
}

grpc::ServerBidiReactor<proto::NodeMessage, proto::CoordMessage>* CoordinatorService::Session(
    grpc::CallbackServerContext* ctx) {
  return NodeSession::Start(ctx, this, options_.session_queue);
}

void CoordinatorService::Deliver(Outbox& out) {
  for (const std::shared_ptr<NodeSession>& s : out.cancel) s->Cancel();
  for (const std::shared_ptr<NodeSession>& s : out.kick) s->Flush();
  out.cancel.clear();
  out.kick.clear();
}

void CoordinatorService::WaitLocked(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                                    absl::Time deadline) {
  const absl::Duration left = std::min(deadline - absl::Now(), kCancelCheck);
  if (left > absl::ZeroDuration()) cv.wait_for(lock, absl::ToChronoNanoseconds(left));
}

void CoordinatorService::WakeKeyLocked(const proto::ObjectRef& ref) {
  auto it = key_waiters_.find(Directory::Key(ref.ns(), ref.key()));
  if (it == key_waiters_.end()) return;
  for (Waiter* w : it->second) w->cv.notify_all();
}

void CoordinatorService::WakeBroadcastsLocked(const proto::ObjectRef& ref) {
  for (auto& [bid, b] : broadcasts_) {
    if (b.ref.ns() == ref.ns() && b.ref.key() == ref.key()) b.cv.notify_all();
  }
}

void CoordinatorService::WakeAllLocked() {
  // Node deaths and shutdown: rare, and they can matter to any waiter (a receiver gone, a
  // sender's slots freed, a broadcast target or drop holder lost).
  for (auto& [key, waiters] : key_waiters_) {
    for (Waiter* w : waiters) w->cv.notify_all();
  }
  for (auto& [bid, b] : broadcasts_) b.cv.notify_all();
  for (auto& [op, d] : pending_drops_) d.cv.notify_all();
}

absl::Time CoordinatorService::DeadlineFrom(uint32_t timeout_ms) const {
  return absl::Now() + std::min(absl::Milliseconds(timeout_ms), options_.max_wait);
}

bool CoordinatorService::AliveLocked(NodeId node) const {
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.info.alive();
}

uint64_t CoordinatorService::AliveCountLocked() const {
  uint64_t n = 0;
  for (const auto& [id, rec] : nodes_) n += rec.info.alive() ? 1 : 0;
  return n;
}

LinkModel CoordinatorService::MeasuredLinkLocked() const {
  // From what live nodes measured; the configured default where nothing is measured.
  std::vector<double> bw, lat;
  for (const auto& [id, rec] : nodes_) {
    if (!rec.info.alive()) continue;
    if (rec.info.bandwidth_bps() > 0) bw.push_back(rec.info.bandwidth_bps());
    if (rec.info.latency_s() > 0) lat.push_back(rec.info.latency_s());
  }
  LinkModel link = options_.default_link;
  auto median = [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  if (!bw.empty()) link.bandwidth_Bps = median(bw);
  // Per-hop latency is a property of the network: the best any node measured. A node's own
  // figure is already the minimum of its samples, and what still differs between nodes is
  // contention (measured here: 10 us to 15 ms across 8 nodes). The median of that would make
  // the model trade a chain for a wide tree, which costs the uplink far more than it saves.
  if (!lat.empty()) link.latency_s = *std::min_element(lat.begin(), lat.end());
  return link;
}

void CoordinatorService::QueueLocked(NodeId node, const OutQueue::Message& msg, size_t bytes, Outbox* out) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || !it->second.info.alive() || it->second.session == nullptr) return;
  std::string why;
  if (!it->second.session->Send(msg, bytes, &why)) {
    overflowed_.emplace_back(node, std::move(why));   // declared dead by the outermost caller
    return;
  }
  out->kick.push_back(it->second.session);
}

void CoordinatorService::FanOutDeltaLocked(const std::vector<proto::NodeInfo>& added,
                                           const std::vector<NodeId>& removed, NodeId skip, Outbox* out) {
  auto msg = std::make_shared<const proto::CoordMessage>(proto::MembershipDelta(++membership_epoch_, added, removed));
  const size_t bytes = msg->ByteSizeLong();
  for (auto& [id, rec] : nodes_) {
    if (id != skip && rec.info.alive() && rec.session != nullptr) QueueLocked(id, msg, bytes, out);
  }
  // Nodes whose queues overflowed die here, each death one more delta (sent in this order).
  SettleOverflowLocked(out);
}

void CoordinatorService::SettleOverflowLocked(Outbox* out) {
  while (!overflowed_.empty()) {   // each death removes a live node: this ends
    auto [node, why] = overflowed_.back();
    overflowed_.pop_back();
    MarkDeadLocked(node, why, out);
  }
}

void CoordinatorService::MarkDeadLocked(NodeId node, const std::string& why, Outbox* out) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || !it->second.info.alive()) return;
  NodeRecord& rec = it->second;
  rec.info.set_alive(false);
  if (rec.session != nullptr) out->cancel.push_back(std::move(rec.session));
  rec.session = nullptr;
  ++nodes_died_;
  std::vector<Directory::Key> lost = directory_.RemoveNode(node, rec.info.name());
  spdlog::warn("node {} ({}) is dead: {}; {} object(s) lost with it", rec.info.name(), node, why, lost.size());
  for (auto& [bid, b] : broadcasts_) {
    b.failed.emplace(node, absl::StrCat("node died: ", why));
  }
  for (auto& [op, d] : pending_drops_) d.waiting.erase(node);
  WakeAllLocked();
  FanOutDeltaLocked({}, {node}, node, out);
}

void CoordinatorService::ReaperLoop() {
  // A scan of the node table is a few microseconds per thousand nodes; at a tenth of the
  // liveness timeout (at most every 100 ms) it holds the lock for well under 1% of the time.
  const absl::Duration period = std::clamp(options_.liveness_timeout / 10, absl::Milliseconds(10), absl::Milliseconds(100));
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    reaper_cv_.wait_for(lock, absl::ToChronoNanoseconds(period));
    if (shutdown_) break;
    absl::Time now = absl::Now();
    Outbox out;
    for (auto& [id, rec] : nodes_) {
      if (rec.info.alive() && now - rec.last_seen > options_.liveness_timeout) {
        MarkDeadLocked(id, absl::StrCat("no heartbeat for ", absl::FormatDuration(now - rec.last_seen)), &out);
      }
    }
    if (!out.kick.empty() || !out.cancel.empty()) {
      lock.unlock();
      Deliver(out);
      lock.lock();
    }
  }
}

grpc::Status CoordinatorService::CheckHello(const proto::Hello& hello) const {
  const proto::NodeInfo& info = hello.node();
  if (!options_.token.empty() && hello.cluster_token() != options_.token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong or missing cluster token");
  }
  if (info.node_id() == 0) return Invalid("Hello.node.node_id must be non-zero");
  if (absl::Status s = ValidateNodeName(info.name()); !s.ok()) return Invalid(absl::StrCat("Hello.node.name: ", s.message()));
  if (info.dp_address().empty()) return Invalid("Hello.node.dp_address is empty");
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::OnHello(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello) {
  if (grpc::Status s = CheckHello(hello); !s.ok()) return s;
  Outbox out;
  grpc::Status s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down");
    s = RegisterLocked(session, hello, &out);
  }
  Deliver(out);
  return s;
}

grpc::Status CoordinatorService::RegisterLocked(const std::shared_ptr<NodeSession>& session,
                                                const proto::Hello& hello, Outbox* out) {
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
    MarkDeadLocked(info.node_id(), "replaced by a new session of the same ferryd", out);
  }
  NodeRecord& rec = nodes_[info.node_id()];
  rec.info = info;
  rec.info.set_alive(true);
  rec.last_seen = absl::Now();
  rec.session = session;
  rec.session_secret = hello.session_secret();
  rec.session_seq = ++session_counter_;
  session->node_id = info.node_id();
  session->seq = rec.session_seq;
  // The others learn of the node by one delta; the node itself gets Welcome and a snapshot at
  // that epoch, queued first on its new session, then whatever follows.
  FanOutDeltaLocked({rec.info}, {}, info.node_id(), out);
  proto::CoordMessage welcome;
  proto::Welcome* w = welcome.mutable_welcome();
  w->set_node_id(info.node_id());
  w->set_heartbeat_interval_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  w->set_liveness_timeout_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.liveness_timeout)));
  w->set_inline_max_bytes(options_.inline_max_bytes);
  w->set_was_declared_dead(was_declared_dead);
  auto welcome_msg = std::make_shared<const proto::CoordMessage>(std::move(welcome));
  QueueLocked(info.node_id(), welcome_msg, welcome_msg->ByteSizeLong(), out);
  std::vector<const proto::NodeInfo*> live;
  live.reserve(nodes_.size());
  for (const auto& [id, r] : nodes_) {
    if (r.info.alive()) live.push_back(&r.info);
  }
  auto snapshot = std::make_shared<const proto::CoordMessage>(proto::MembershipSnapshot(membership_epoch_, live));
  QueueLocked(info.node_id(), snapshot, snapshot->ByteSizeLong(), out);
  ReportedHoldingsLocked(hello, out);
  spdlog::info("node {} ({}) registered with {} object(s); {} alive", info.name(), info.node_id(),
               hello.holdings_size(), AliveCountLocked());
  return grpc::Status::OK;
}

void CoordinatorService::ReportedHoldingsLocked(const proto::Hello& hello, Outbox* out) {
  const proto::NodeInfo& info = hello.node();
  for (const proto::HeldObject& held : hello.holdings()) {
    if (!CheckRef(held.ref()).ok()) continue;
    absl::Status s = directory_.Publish(info.node_id(), held.ref(), held.meta(), held.inline_data(),
                                        MeasuredLinkLocked(), AliveCountLocked(), /*rereport=*/true);
    if (s.ok()) {
      WakeKeyLocked(held.ref());
      continue;
    }
    spdlog::warn("node {}: re-reported {} rejected: {}", info.name(), Name(held.ref()), std::string(s.message()));
    // A copy of a deleted incarnation must not come back: the node drops it.
    if (s.code() == absl::StatusCode::kNotFound) DropLocked(info.node_id(), held.ref(), held.meta().incarnation(), 0, out);
  }
}

bool CoordinatorService::OnNodeMessage(NodeSession* session, const proto::NodeMessage& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  if (msg.has_drop_done()) {
    auto op = pending_drops_.find(msg.drop_done().op_id());
    if (op != pending_drops_.end() && op->second.waiting.erase(session->node_id) > 0) op->second.cv.notify_all();
    return true;
  }
  if (!msg.has_heartbeat()) return true;
  auto it = nodes_.find(session->node_id);
  if (it == nodes_.end() || it->second.session_seq != session->seq || !it->second.info.alive()) return false;
  // Heartbeat figures update the node's record (ClusterStatus, the planner's link model);
  // they are not membership changes and nothing is pushed.
  const proto::Heartbeat& hb = msg.heartbeat();
  NodeRecord& rec = it->second;
  rec.last_seen = absl::Now();
  if (hb.bandwidth_bps() > 0) rec.info.set_bandwidth_bps(hb.bandwidth_bps());
  if (hb.latency_s() > 0) rec.info.set_latency_s(hb.latency_s());
  rec.info.set_arena_used(hb.arena_used());
  rec.info.set_objects(hb.objects());
  return true;
}

void CoordinatorService::OnSessionEnd(NodeSession* session, const std::string& why) {
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nodes_.find(session->node_id);
    if (!shutdown_ && it != nodes_.end() && it->second.session_seq == session->seq) {
      MarkDeadLocked(session->node_id, why, &out);
    }
  }
  Deliver(out);
}

grpc::Status CoordinatorService::Publish(grpc::ServerContext*, const proto::PublishRequest* req, proto::PublishReply*) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!AliveLocked(req->node_id())) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("node ", req->node_id(), " is not registered"));
    }
    absl::Status s = directory_.Publish(req->node_id(), req->ref(), req->meta(), req->inline_data(),
                                        MeasuredLinkLocked(), std::max<uint64_t>(AliveCountLocked(), 2) - 1);
    if (!s.ok()) return ToGrpc(s);
    WakeKeyLocked(req->ref());
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Unpublish(grpc::ServerContext*, const proto::UnpublishRequest* req,
                                           proto::UnpublishReply*) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto node = nodes_.find(req->node_id());
    const std::string name = node != nodes_.end() ? node->second.info.name() : "?";
    const bool evicted = req->reason() == proto::UnpublishRequest::EVICTED;
    if (evicted) spdlog::info("node {} ({}) evicted its copy of {}", name, req->node_id(), Name(req->ref()));
    directory_.Unpublish(req->node_id(), name, req->ref(), evicted);
    WakeKeyLocked(req->ref());   // a receiver's slot on that copy is free; a Get may now fail as lost
    WakeBroadcastsLocked(req->ref());
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::AcquireSource(grpc::ServerContext* ctx, const proto::AcquireSourceRequest* req,
                                               proto::AcquireSourceReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  ++acquires_;
  absl::flat_hash_set<NodeId> exclude(req->exclude().begin(), req->exclude().end());
  const absl::Time deadline = DeadlineFrom(req->timeout_ms());
  std::unique_lock<std::mutex> lock(mu_);
  Waiter waiter;
  const Directory::Key key(req->ref().ns(), req->ref().key());
  key_waiters_[key].insert(&waiter);
  auto unregister = absl::MakeCleanup([&] {
    auto it = key_waiters_.find(key);
    it->second.erase(&waiter);
    if (it->second.empty()) key_waiters_.erase(it);
  });
  while (true) {
    if (shutdown_ || ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "coordinator shutting down");
    if (!AliveLocked(req->node_id())) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("receiver node ", req->node_id(), " is not registered"));
    }
    absl::StatusOr<AcquireResult> r = directory_.Acquire(req->node_id(), req->ref(), exclude);
    if (r.ok()) {
      SourceReplyLocked(*std::move(r), reply);
      return grpc::Status::OK;
    }
    const absl::StatusCode code = r.status().code();
    if (code != absl::StatusCode::kNotFound && code != absl::StatusCode::kUnavailable) return ToGrpc(r.status());
    // Asked not to wait: say what is the case, as Locate does.
    if (req->timeout_ms() == 0 && code == absl::StatusCode::kNotFound) return ToGrpc(r.status());
    if (absl::Now() >= deadline) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          code == absl::StatusCode::kNotFound
                              ? absl::StrCat("object ", Name(req->ref()), " was not created within ", req->timeout_ms(), " ms")
                              : absl::StrCat("no sender for ", Name(req->ref()), " became free within ",
                                             req->timeout_ms(), " ms: ", r.status().message()));
    }
    WaitLocked(lock, waiter.cv, deadline);
  }
}

grpc::Status CoordinatorService::ReportTransfer(grpc::ServerContext*, const proto::ReportTransferRequest* req,
                                                proto::ReportTransferReply*) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    switch (req->outcome()) {
      case proto::ReportTransferRequest::COMPLETED:
        ++transfers_completed_;
        if (!directory_.Completed(req->node_id(), req->ref(), req->incarnation())) {
          // The object was deleted (or deleted and created again) while this copy travelled:
          // it must not survive on the receiver.
          spdlog::info("node {} completed a copy of deleted {} (incarnation {}): telling it to drop it",
                       req->node_id(), Name(req->ref()), req->incarnation());
          DropLocked(req->node_id(), req->ref(), req->incarnation(), 0, &out);
        }
        break;
      case proto::ReportTransferRequest::SENDER_FAILED:
        ++sender_failures_;
        directory_.SenderFailed(req->node_id(), req->ref());
        break;
      case proto::ReportTransferRequest::ABORTED:
        directory_.Aborted(req->node_id(), req->ref());
        if (req->op_id() != 0) {   // the pull of one explicit broadcast
          auto b = broadcasts_.find(req->op_id());
          if (b != broadcasts_.end()) b->second.failed.emplace(req->node_id(), req->detail());
        } else {                   // a sender without op ids: every broadcast of the object
          for (auto& [bid, b] : broadcasts_) {
            if (b.ref.ns() == req->ref().ns() && b.ref.key() == req->ref().key()) {
              b.failed.emplace(req->node_id(), req->detail());
            }
          }
        }
        break;
      default:
        return Invalid(absl::StrCat("unknown transfer outcome ", req->outcome()));
    }
    // A completed or abandoned pull frees its sender's slot and may end a broadcast.
    WakeKeyLocked(req->ref());
    if (auto b = broadcasts_.find(req->op_id()); req->op_id() != 0 && b != broadcasts_.end()) {
      b->second.cv.notify_all();
    } else {
      WakeBroadcastsLocked(req->ref());
    }
  }
  Deliver(out);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Locate(grpc::ServerContext* ctx, const proto::LocateRequest* req,
                                        proto::LocateReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  const absl::Time deadline = DeadlineFrom(req->timeout_ms());
  std::unique_lock<std::mutex> lock(mu_);
  Waiter waiter;
  const Directory::Key key(req->ref().ns(), req->ref().key());
  key_waiters_[key].insert(&waiter);
  auto unregister = absl::MakeCleanup([&] {
    auto it = key_waiters_.find(key);
    it->second.erase(&waiter);
    if (it->second.empty()) key_waiters_.erase(it);
  });
  while (true) {
    absl::StatusOr<proto::LocateReply> r = directory_.Locate(req->ref());
    if (r.ok()) {
      *reply = std::move(*r);
      return grpc::Status::OK;
    }
    if (r.status().code() != absl::StatusCode::kNotFound) return ToGrpc(r.status());
    if (absl::Now() >= deadline || shutdown_ || ctx->IsCancelled()) {
      if (req->timeout_ms() == 0) return ToGrpc(r.status());
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          absl::StrCat("object ", Name(req->ref()), " was not created within ", req->timeout_ms(), " ms"));
    }
    WaitLocked(lock, waiter.cv, deadline);
  }
}

grpc::Status CoordinatorService::Delete(grpc::ServerContext* ctx, const proto::DeleteRequest* req,
                                        proto::DeleteReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  Outbox out;
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<Directory::Deleted> deleted = directory_.Delete(req->ref());
  if (!deleted.ok()) return ToGrpc(deleted.status());
  WakeKeyLocked(req->ref());
  WakeBroadcastsLocked(req->ref());
  // Every holder, partial copies and receivers of inline bytes included, drops its copy and
  // remembers the incarnation as deleted; Delete answers once each live one has said so, so
  // that no Get started after Delete returns can read the bytes anywhere.
  const uint64_t op = next_drop_op_++;
  PendingDrop& pending = pending_drops_[op];   // std::map: stays put while others come and go
  for (NodeId id : deleted->holders) {
    if (!AliveLocked(id)) continue;
    DropLocked(id, req->ref(), deleted->incarnation, op, &out);
    if (AliveLocked(id)) pending.waiting.insert(id);   // (not if its queue overflowed)
  }
  reply->set_copies_dropped(static_cast<uint32_t>(deleted->holders.size()));
  lock.unlock();
  Deliver(out);
  lock.lock();
  const absl::Time until = absl::Now() + options_.drop_ack_wait;
  while (!pending.waiting.empty() && !shutdown_ && !ctx->IsCancelled() && absl::Now() < until) {
    WaitLocked(lock, pending.cv, until);
  }
  if (!pending.waiting.empty()) {
    spdlog::warn("delete of {}: {} holder(s) did not confirm the drop within {}", Name(req->ref()),
                 pending.waiting.size(), absl::FormatDuration(options_.drop_ack_wait));
  }
  pending_drops_.erase(op);
  return grpc::Status::OK;
}

void CoordinatorService::DropLocked(NodeId node, const proto::ObjectRef& ref, uint64_t incarnation, uint64_t op_id,
                                    Outbox* out) {
  proto::CoordMessage msg;
  proto::DropInstruction* drop = msg.mutable_drop();
  *drop->mutable_ref() = ref;
  drop->set_incarnation(incarnation);
  drop->set_op_id(op_id);
  auto shared = std::make_shared<const proto::CoordMessage>(std::move(msg));
  QueueLocked(node, shared, shared->ByteSizeLong(), out);
  SettleOverflowLocked(out);
}

grpc::Status CoordinatorService::List(grpc::ServerContext*, const proto::ListRequest* req, proto::ListReply* reply) {
  if (absl::Status s = ValidateNamespace(req->ns()); !s.ok()) return ToGrpc(s);
  std::lock_guard<std::mutex> lock(mu_);
  for (proto::ListEntry& e : directory_.List(req->ns(), req->prefix(), req->limit())) {
    *reply->add_objects() = std::move(e);
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ClusterStatus(grpc::ServerContext*, const proto::ClusterStatusRequest*,
                                               proto::ClusterStatusReply* reply) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const proto::NodeInfo*> infos;
  for (const auto& [id, rec] : nodes_) infos.push_back(&rec.info);
  std::sort(infos.begin(), infos.end(), [](auto* a, auto* b) { return a->name() < b->name(); });
  for (const proto::NodeInfo* info : infos) *reply->add_nodes() = *info;
  reply->set_objects(directory_.size());
  reply->set_membership_epoch(membership_epoch_);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Broadcast(grpc::ServerContext* ctx, const proto::BroadcastRequest* req,
                                           proto::BroadcastReply* reply) {
  if (absl::Status s = CheckRef(req->ref()); !s.ok()) return ToGrpc(s);
  const absl::Time start = absl::Now();
  const absl::Time deadline = DeadlineFrom(req->timeout_ms());
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<proto::LocateReply> located = directory_.Locate(req->ref());
  if (!located.ok()) return ToGrpc(located.status());
  absl::StatusOr<std::vector<NodeId>> chosen = BroadcastTargetsLocked(*req);
  if (!chosen.ok()) return ToGrpc(chosen.status());
  const std::vector<NodeId> targets = *std::move(chosen);
  const uint64_t bid = next_broadcast_id_++;
  BroadcastState& state = broadcasts_[bid];
  state.ref = req->ref();
  Outbox out;
  proto::CoordMessage msg;
  proto::PullInstruction* pull = msg.mutable_pull();
  *pull->mutable_ref() = req->ref();
  pull->set_broadcast_id(bid);
  pull->set_deadline_unix_ms(absl::ToUnixMillis(deadline));
  if (const std::string* bytes = directory_.InlineData(req->ref(), pull->mutable_meta()); bytes != nullptr) {
    pull->set_is_inline(true);
    pull->set_inline_data(*bytes);
  }
  OutQueue::Message shared;
  size_t bytes = 0;
  for (NodeId id : targets) {
    NodeRecord& rec = nodes_[id];
    if (!rec.info.alive()) {
      state.failed.emplace(id, "node is dead");
    } else if (!directory_.IsComplete(id, req->ref()) && rec.session != nullptr) {
      if (shared == nullptr || !msg.pull().is_inline()) {
        // A large object's instruction names this target's own sender; an inline one (the
        // same bytes for everyone) is shared by all targets' queues.
        auto one = std::make_shared<proto::CoordMessage>(msg);
        PlanPullLocked(id, req->ref(), one->mutable_pull());
        shared = std::move(one);
        bytes = shared->ByteSizeLong();
      } else {
        PlanPullLocked(id, req->ref(), msg.mutable_pull());   // records the inline receiver only
      }
      QueueLocked(id, shared, bytes, &out);
    }
  }
  SettleOverflowLocked(&out);
  lock.unlock();
  Deliver(out);
  lock.lock();
  reply->set_broadcast_id(bid);
  auto finished = [&](NodeId id) {
    return directory_.IsComplete(id, req->ref()) || broadcasts_[bid].failed.contains(id);
  };
  while (req->wait() && !shutdown_ && !ctx->IsCancelled() && absl::Now() < deadline &&
         !std::all_of(targets.begin(), targets.end(), finished)) {
    WaitLocked(lock, state.cv, deadline);
  }
  reply->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  for (NodeId id : targets) {
    proto::BroadcastResult* r = reply->add_results();
    r->set_node_id(id);
    r->set_node_name(nodes_[id].info.name());
    const bool complete = directory_.IsComplete(id, req->ref());
    r->set_ok(complete || !req->wait());
    if (!complete && req->wait()) {
      auto f = broadcasts_[bid].failed.find(id);
      r->set_error(f != broadcasts_[bid].failed.end() ? f->second : "timed out before the copy completed");
    }
  }
  broadcasts_.erase(bid);
  return grpc::Status::OK;
}

void CoordinatorService::PlanPullLocked(NodeId target, const proto::ObjectRef& ref, proto::PullInstruction* pull) {
  // Attach the target now, as its AcquireSource would, so it skips that round trip. Only for
  // nodes with no copy yet; anything else (inline, busy senders) is left to AcquireSource.
  if (pull->is_inline()) {
    directory_.InlineReceiver(target, ref);   // so that a Delete reaches it
    return;
  }
  if (directory_.HasCopy(target, ref)) return;
  absl::StatusOr<AcquireResult> r = directory_.Acquire(target, ref, {});
  if (!r.ok() || r->is_inline) return;
  SourceReplyLocked(*std::move(r), pull->mutable_source());
  ++acquires_;
}

void CoordinatorService::SourceReplyLocked(AcquireResult r, proto::AcquireSourceReply* reply) {
  *reply->mutable_meta() = std::move(r.meta);
  reply->set_chunk_size(r.chunk_size);
  reply->set_window(r.window);
  if (r.receiver_has_copy) {
    reply->set_receiver_has_copy(true);
    return;
  }
  if (r.is_inline) {
    reply->set_is_inline(true);
    reply->set_inline_data(std::move(r.inline_data));
    return;
  }
  reply->set_sender(r.sender);
  reply->set_sender_complete(r.sender_complete);
  reply->set_sender_address(nodes_[r.sender].info.dp_address());
}

absl::StatusOr<std::vector<NodeId>> CoordinatorService::BroadcastTargetsLocked(
    const proto::BroadcastRequest& req) const {
  std::vector<NodeId> targets;
  if (req.node_ids_size() == 0) {  // every live node
    for (const auto& [id, rec] : nodes_) {
      if (rec.info.alive()) targets.push_back(id);
    }
    return targets;
  }
  for (NodeId id : req.node_ids()) {
    if (nodes_.find(id) == nodes_.end()) {
      return absl::NotFoundError(absl::StrCat("broadcast target node ", id, " is not registered"));
    }
    targets.push_back(id);
  }
  return targets;
}

std::string CoordinatorService::MetricsText() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  absl::StrAppend(&out, "# TYPE ferry_coord_nodes_alive gauge\nferry_coord_nodes_alive ", AliveCountLocked(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_objects gauge\nferry_coord_objects ", directory_.size(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_acquires_total counter\nferry_coord_acquires_total ", acquires_.load(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_transfers_completed_total counter\nferry_coord_transfers_completed_total ",
                  transfers_completed_.load(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_sender_failures_total counter\nferry_coord_sender_failures_total ",
                  sender_failures_.load(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_nodes_died_total counter\nferry_coord_nodes_died_total ", nodes_died_.load(), "\n");
  return out;
}

}  // namespace ferry::control
