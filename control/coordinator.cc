#include "control/coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "control/collectives/batch_broadcast.h"
#include "control/collectives/broadcast.h"
#include "control/collectives/delete.h"
#include "control/collectives/group_collective.h"
#include "control/collectives/reduce.h"
#include "spdlog/spdlog.h"

namespace ferry::control {
namespace {

Directory::Key KeyOf(const proto::ObjectRef& ref) { return Directory::Key(ref.ns(), ref.key()); }

}  // namespace

// ---- the waiting calls --------------------------------------------------------------------

// A waiting call of this coordinator: Begin (under mu_, once, from Start, after it is filed)
// registers it where the changes it waits for happen; it may complete it (an error at once).
class Coordinator::CoordWait : public Waiter {
 public:
  using Waiter::Waiter;
  virtual void Begin(After* after) = 0;
};

// AcquireSource: waits for the key to exist and a sender to have a free slot.
class Coordinator::AcquireWait final : public CoordWait {
 public:
  AcquireWait(Coordinator* c, const proto::AcquireSourceRequest* req, proto::AcquireSourceReply* reply,
              absl::Time deadline, Reply answer)
      : CoordWait(deadline, std::move(answer)),
        c_(c),
        req_(req),
        reply_(reply),
        exclude_(req->exclude().begin(), req->exclude().end()) {}

  void Begin(After*) override {
    c_->mu_.AssertHeld();
    registration_ = KeyWaiters::Registration(&c_->key_waiters_, KeyOf(req_->ref()), this);
  }

 protected:
  std::optional<absl::Status> Attempt() override {
    c_->mu_.AssertHeld();
    if (c_->directory_.IsDeletedIncarnation(req_->ref(), req_->incarnation())) {
      return absl::NotFoundError(absl::StrCat("object ", RefName(req_->ref()), " (incarnation ", req_->incarnation(),
                                              ") was deleted: the partial copy cannot be completed"));
    }
    CollectiveContext ctx = c_->ContextLocked();
    absl::Status s = AttachReceiver(ctx, req_->node_id(), req_->ref(), exclude_, reply_);
    if (s.ok()) return s;
    const absl::StatusCode code = s.code();
    if (code != absl::StatusCode::kNotFound && code != absl::StatusCode::kUnavailable) return s;
    // Asked not to wait: say what is the case, as Locate does.
    if (req_->timeout_ms() == 0 && code == absl::StatusCode::kNotFound) return s;
    last_ = std::move(s);
    return std::nullopt;
  }
  absl::Status GiveUp(WaitEnd why) override {
    if (why == WaitEnd::kShutdown) return absl::CancelledError("coordinator shutting down");
    if (why == WaitEnd::kCancelled) return absl::CancelledError("the caller cancelled AcquireSource");
    if (last_.code() == absl::StatusCode::kNotFound) {
      return absl::DeadlineExceededError(
          absl::StrCat("object ", RefName(req_->ref()), " was not created within ", req_->timeout_ms(), " ms"));
    }
    return absl::DeadlineExceededError(absl::StrCat("no sender for ", RefName(req_->ref()), " became free within ",
                                                    req_->timeout_ms(), " ms: ", last_.message()));
  }
  void Unregister() override {
    c_->mu_.AssertHeld();
    registration_.Reset();
  }

 private:
  Coordinator* const c_;
  const proto::AcquireSourceRequest* const req_;
  proto::AcquireSourceReply* const reply_;
  const absl::flat_hash_set<NodeId> exclude_;
  absl::Status last_ = absl::NotFoundError("not tried");
  KeyWaiters::Registration registration_;
};

// Locate: waits for the key to exist.
class Coordinator::LocateWait final : public CoordWait {
 public:
  LocateWait(Coordinator* c, const proto::LocateRequest* req, proto::LocateReply* reply, absl::Time deadline,
             Reply answer)
      : CoordWait(deadline, std::move(answer)), c_(c), req_(req), reply_(reply) {}

  void Begin(After*) override {
    c_->mu_.AssertHeld();
    registration_ = KeyWaiters::Registration(&c_->key_waiters_, KeyOf(req_->ref()), this);
  }

 protected:
  std::optional<absl::Status> Attempt() override {
    c_->mu_.AssertHeld();
    absl::StatusOr<proto::LocateReply> r = c_->directory_.Locate(req_->ref());
    if (r.ok()) {
      *reply_ = *std::move(r);
      return absl::OkStatus();
    }
    if (r.status().code() != absl::StatusCode::kNotFound) return r.status();
    last_ = r.status();
    return std::nullopt;
  }
  absl::Status GiveUp(WaitEnd) override {
    // At the deadline, at shutdown and on cancellation alike (docs/protocol.md, Locate).
    if (req_->timeout_ms() == 0) return last_;
    return absl::DeadlineExceededError(
        absl::StrCat("object ", RefName(req_->ref()), " was not created within ", req_->timeout_ms(), " ms"));
  }
  void Unregister() override {
    c_->mu_.AssertHeld();
    registration_.Reset();
  }

 private:
  Coordinator* const c_;
  const proto::LocateRequest* const req_;
  proto::LocateReply* const reply_;
  absl::Status last_ = absl::NotFoundError("not tried");
  KeyWaiters::Registration registration_;
};

// A call that runs one collective operation (Broadcast, Delete): done when the operation is.
class Coordinator::OperationWait final : public CoordWait {
 public:
  using Make = absl::AnyInvocable<std::unique_ptr<Collective>(OpId)>;
  // Moves the concluded operation's result into the call's reply.
  using Take = absl::AnyInvocable<void(Collective&)>;

  OperationWait(Coordinator* c, absl::Time deadline, Reply answer, Make make, Take take, bool wait)
      : CoordWait(deadline, std::move(answer)), c_(c), make_(std::move(make)), take_(std::move(take)), wait_(wait) {}

  void Begin(After* after) override {
    c_->mu_.AssertHeld();
    op_id_ = c_->operations_.NextId();
    std::unique_ptr<Collective> op = make_(op_id_);
    CollectiveContext ctx = c_->ContextLocked();
    absl::StatusOr<Instructions> ins = op->Start(ctx);
    if (!ins.ok()) {
      op_id_ = 0;
      (void)Complete(ins.status());   // Start answers it
      return;
    }
    const std::vector<Directory::Key> keys = op->keys();
    c_->operations_.Add(std::move(op), this);
    c_->SendLocked(*ins, after);
    // Without `wait` the call answers now; the operation ends with it.
    if (!wait_) (void)End(WaitEnd::kDeadline);
    // Its objects changed for the others (a Delete's waiting Gets fail, other broadcasts end).
    for (const Directory::Key& key : keys) c_->KeyChangedLocked(key, after);
  }

 protected:
  std::optional<absl::Status> Attempt() override {
    c_->mu_.AssertHeld();
    Collective* op = c_->operations_.Find(op_id_);
    if (op == nullptr) return absl::OkStatus();
    CollectiveContext ctx = c_->ContextLocked();
    if (!op->Done(ctx)) return std::nullopt;
    op->Conclude(ctx, Conclusion::kDone);
    take_(*op);
    return op->status();
  }
  absl::Status GiveUp(WaitEnd why) override {
    c_->mu_.AssertHeld();
    Collective* op = c_->operations_.Find(op_id_);
    if (op == nullptr) return absl::OkStatus();
    CollectiveContext ctx = c_->ContextLocked();
    op->Conclude(ctx, !wait_                          ? Conclusion::kDone
                      : why == WaitEnd::kDeadline  ? Conclusion::kDeadline
                      : why == WaitEnd::kCancelled ? Conclusion::kCancelled
                                                   : Conclusion::kShutdown);
    take_(*op);
    return op->status();
  }
  void Unregister() override {
    c_->mu_.AssertHeld();
    if (op_id_ != 0) c_->operations_.Remove(op_id_);
  }

 private:
  Coordinator* const c_;
  Make make_;
  Take take_;
  const bool wait_;
  OpId op_id_ = 0;
};

// ---- construction, shutdown, the timer ------------------------------------------------------

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)),
      cluster_(ClusterOptions{options_.heartbeat_interval, options_.liveness_timeout, options_.inline_max_bytes,
                              options_.token, options_.membership_coalesce}),
      directory_(DirectoryOptions{options_.inline_max_bytes, options_.limits}) {
  timer_ = std::thread([this] { TimerLoop(); });
}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Shutdown() {
  After after;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      after.out.cancel = cluster_.Sessions();
      std::vector<std::shared_ptr<Waiter>> all;
      for (auto& [id, w] : waiting_) all.push_back(w);
      for (std::shared_ptr<Waiter>& w : all) {
        if (w->End(WaitEnd::kShutdown)) CompletedLocked(std::move(w), &after);
      }
      timer_cv_.Signal();
    }
  }
  Deliver(after);
  if (timer_.joinable() && timer_.get_id() != std::this_thread::get_id()) timer_.join();
}

void Coordinator::TimerLoop() {
  mu_.Lock();
  while (!shutdown_) {
    const absl::Time next = std::min({cluster_.NextExpiry(), call_deadlines_.Next(), cluster_.NextDeltaFlush()});
    // `next` accounts for the deltas waiting now; SettleLocked signals for later ones.
    delta_flush_armed_ = cluster_.NextDeltaFlush() != absl::InfiniteFuture();
    if (absl::Now() < next) {
      // Woken early (an earlier deadline was filed, or shutdown): look again.
      timer_cv_.WaitWithDeadline(&mu_, next);
      continue;
    }
    const absl::Time now = absl::Now();
    After after;
    if (cluster_.NextDeltaFlush() <= now) {
      cluster_.FlushDeltas(now, &after.out);
    }
    cluster_.ExpireSilent(now, &after.out);
    for (uint64_t id : call_deadlines_.PopExpired(now)) {
      auto it = waiting_.find(id);
      if (it == waiting_.end()) continue;
      std::shared_ptr<Waiter> w = it->second;
      if (w->End(WaitEnd::kDeadline)) CompletedLocked(std::move(w), &after);
    }
    SettleLocked(&after);
    mu_.Unlock();
    Deliver(after);
    mu_.Lock();
  }
  mu_.Unlock();
}

void Coordinator::Deliver(After& after) {
  if (membership_listener_) {
    for (const auto& [node, why] : after.out.died) {
      proto::NodeInfo info;
      info.set_node_id(node);
      membership_listener_(info, false);
    }
  }
  for (const std::shared_ptr<NodeSession>& s : after.out.cancel) s->Cancel();
  for (const std::shared_ptr<NodeSession>& s : after.out.kick) s->Flush();
  for (const std::shared_ptr<Waiter>& w : after.answers) w->Deliver();
  after.out.cancel.clear();
  after.out.kick.clear();
  after.answers.clear();
}

CollectiveContext Coordinator::ContextLocked() {
  return CollectiveContext{cluster_, directory_, absl::Now(), &acquires_, &batches_};
}

LinkModel Coordinator::MeasuredLink() {
  absl::MutexLock lock(&mu_);
  return cluster_.MeasuredLink(options_.default_link);
}

absl::Time Coordinator::DeadlineFrom(uint32_t timeout_ms) const {
  return absl::Now() + std::min(absl::Milliseconds(timeout_ms), options_.max_wait);
}

// ---- events ---------------------------------------------------------------------------------

void Coordinator::SendLocked(const Instructions& ins, After* after) {
  for (const Instruction& i : ins) cluster_.Queue(i.node, i.msg, i.bytes, &after->out);
}

void Coordinator::SettleLocked(After* after) {
  // A death can queue instructions (re-planning) whose queues overflow: more deaths, settled
  // by the same loop (each removes a live node, so it ends).
  while (after->deaths_settled < after->out.died.size()) {
    const auto [node, why] = after->out.died[after->deaths_settled++];
    ++nodes_died_;
    const proto::NodeInfo* info = cluster_.Info(node);
    const std::string name = info != nullptr ? info->name() : "?";
    std::vector<Directory::Key> lost = directory_.RemoveNode(node, name);
    for (const std::string& group : groups_.OnNodeDeath(node, why)) {
      spdlog::warn("group '{}' revoked: its member {} ({}) died", group, name, node);
    }
    spdlog::warn("node {} ({}) is dead: {}; {} object(s) lost with it", name, node, why, lost.size());
    CollectiveContext ctx = ContextLocked();
    for (Collective* op : operations_.All()) SendLocked(op->OnNodeDeath(ctx, node, why), after);
    // A receiver gone, a sender's slots freed, a target or holder lost: any call may be done.
    std::vector<Waiter*> all;
    all.reserve(waiting_.size());
    for (auto& [id, w] : waiting_) all.push_back(w.get());
    for (Waiter* w : all) PollLocked(w, after);
  }
  // Membership deltas waiting to be merged (ClusterOptions::delta_coalesce): the timer sends
  // them when their interval ends, so it must know of the earlier deadline.
  if (!delta_flush_armed_ && cluster_.NextDeltaFlush() != absl::InfiniteFuture()) {
    delta_flush_armed_ = true;
    timer_cv_.Signal();
  }
}

void Coordinator::RecordGroupResultsLocked(GroupCollective& op, After* after) {
  const LinkModel link = cluster_.MeasuredLink(options_.default_link);
  const uint64_t fanout = std::max<uint64_t>(cluster_.AliveCount(), 2) - 1;
  absl::Status s;
  std::vector<Directory::Key> keys;
  for (auto& [node, r] : op.TakeResults()) {
    // Every member made its own copy: each is recorded as a re-report would be (the first
    // creates the entry, the others join it as complete copies of the same incarnation).
    s = directory_.Publish(node, r.ref(), r.meta(), std::move(*r.mutable_inline_data()), link, fanout,
                           /*rereport=*/true);
    if (!s.ok()) break;
    keys.emplace_back(r.ref().ns(), r.ref().key());
  }
  SendLocked(op.Recorded(s), after);
  for (const Directory::Key& key : keys) KeyChangedLocked(key, after);
}

void Coordinator::KeyChangedLocked(const Directory::Key& key, After* after) {
  CollectiveContext ctx = ContextLocked();
  for (Collective* op : operations_.ForKey(key)) {
    SendLocked(op->OnObjectChanged(ctx, key), after);
    PollLocked(operations_.WaiterOf(op->id()), after);
  }
  for (Waiter* w : key_waiters_.Of(key)) PollLocked(w, after);
}

void Coordinator::PollLocked(Waiter* waiter, After* after) {
  if (waiter == nullptr) return;
  auto it = waiting_.find(waiter->id);
  if (it == waiting_.end()) return;
  std::shared_ptr<Waiter> w = it->second;
  if (w->Poll()) CompletedLocked(std::move(w), after);
}

void Coordinator::CompletedLocked(std::shared_ptr<Waiter> waiter, After* after) {
  waiting_.erase(waiter->id);
  call_deadlines_.Erase(waiter->id);
  after->answers.push_back(std::move(waiter));
}

// ---- node sessions --------------------------------------------------------------------------

grpc::Status Coordinator::OnHello(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello) {
  After after;
  grpc::Status s;
  {
    absl::MutexLock lock(&mu_);
    s = cluster_.CheckHello(hello);
    if (s.ok() && shutdown_) s = grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down");
    const absl::Time earliest = cluster_.NextExpiry();
    if (s.ok()) s = cluster_.Register(session, hello, absl::Now(), &after.out);
    if (s.ok()) {
      ReportedHoldingsLocked(hello, &after);
      spdlog::info("node {} ({}) registered with {} object(s); {} alive", hello.node().name(), hello.node().node_id(),
                   hello.holdings_size(), cluster_.AliveCount());
      // A new node's deadline is the latest of all, unless no other node is alive (or one was
      // replaced): then the timer must look again.
      if (cluster_.NextExpiry() < earliest) timer_cv_.Signal();
    }
    SettleLocked(&after);
  }
  Deliver(after);
  if (s.ok() && membership_listener_) membership_listener_(hello.node(), true);
  return s;
}

void Coordinator::ReportedHoldingsLocked(const proto::Hello& hello, After* after) {
  const proto::NodeInfo& info = hello.node();
  for (const proto::HeldObject& held : hello.holdings()) {
    if (!ValidateObjectName(held.ref().ns(), held.ref().key()).ok()) continue;
    absl::Status s = directory_.Publish(info.node_id(), held.ref(), held.meta(), held.inline_data(),
                                        cluster_.MeasuredLink(options_.default_link), cluster_.AliveCount(),
                                        /*rereport=*/true);
    if (s.ok()) {
      KeyChangedLocked(KeyOf(held.ref()), after);
      continue;
    }
    spdlog::warn("node {}: re-reported {} rejected: {}", info.name(), RefName(held.ref()), std::string(s.message()));
    // A copy of a deleted incarnation must not come back: the node drops it.
    if (s.code() == absl::StatusCode::kNotFound) {
      SendLocked({MakeInstruction(info.node_id(), DropMessage(held.ref(), held.meta().incarnation(), 0))}, after);
    }
  }
}

bool Coordinator::OnNodeMessage(NodeSession* session, const proto::NodeMessage& msg) {
  After after;
  bool keep = true;
  {
    absl::MutexLock lock(&mu_);
    if (msg.has_transfer_report()) {
      // As the unary ReportTransfer, from the session's own node whatever node_id says.
      proto::ReportTransferRequest req = msg.transfer_report();
      req.set_node_id(session->node_id);
      if (absl::Status s = ReportTransferLocked(req, &after); !s.ok()) {
        spdlog::warn("node {}: transfer report on its session refused: {}", req.node_id(), std::string(s.message()));
      }
    } else if (msg.has_drop_done()) {
      if (Collective* op = operations_.Find(msg.drop_done().op_id()); op != nullptr) {
        CollectiveContext ctx = ContextLocked();
        SendLocked(op->OnNodeAck(ctx, session->node_id), &after);
        PollLocked(operations_.WaiterOf(op->id()), &after);
        SettleLocked(&after);
      }
    } else if (msg.has_batch_report()) {
      if (Collective* op = operations_.Find(msg.batch_report().op_id()); op != nullptr) {
        CollectiveContext ctx = ContextLocked();
        const OpId id = op->id();
        SendLocked(op->OnBatchReport(ctx, session->node_id, msg.batch_report()), &after);
        const std::vector<Directory::Key> changed = op->TakeChangedKeys();
        // Polling may conclude and remove the operation: `op` is not touched after this.
        PollLocked(operations_.WaiterOf(id), &after);
        // New complete copies: Gets waiting for a free sender of those objects may attach.
        for (const Directory::Key& key : changed) KeyChangedLocked(key, &after);
        SettleLocked(&after);
      }
    } else if (msg.has_reduce_report()) {
      if (Collective* op = operations_.Find(msg.reduce_report().op_id()); op != nullptr) {
        CollectiveContext ctx = ContextLocked();
        const OpId id = op->id();
        SendLocked(op->OnReduceReport(ctx, session->node_id, msg.reduce_report()), &after);
        PollLocked(operations_.WaiterOf(id), &after);
        SettleLocked(&after);
      }
    } else if (msg.has_program_report()) {
      if (Collective* op = operations_.Find(msg.program_report().op_id()); op != nullptr) {
        CollectiveContext ctx = ContextLocked();
        const OpId id = op->id();
        SendLocked(op->OnProgramReport(ctx, session->node_id, msg.program_report()), &after);
        if (auto* group = dynamic_cast<GroupCollective*>(op); group != nullptr && group->ResultsPending()) {
          RecordGroupResultsLocked(*group, &after);
        }
        PollLocked(operations_.WaiterOf(id), &after);
        SettleLocked(&after);
      }
    } else if (msg.has_heartbeat()) {
      keep = cluster_.Heartbeat(*session, msg.heartbeat(), absl::Now());
    }
  }
  Deliver(after);
  return keep;
}

void Coordinator::OnSessionEnd(NodeSession* session, const std::string& why) {
  After after;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_ && cluster_.IsCurrent(*session)) cluster_.MarkDead(session->node_id, why, &after.out);
    SettleLocked(&after);
  }
  Deliver(after);
}

// ---- unary operations -----------------------------------------------------------------------

absl::Status Coordinator::Publish(const proto::PublishRequest& req) {
  After after;
  {
    absl::MutexLock lock(&mu_);
    if (!cluster_.Alive(req.node_id())) {
      return absl::FailedPreconditionError(absl::StrCat("node ", req.node_id(), " is not registered"));
    }
    absl::Status s = directory_.Publish(req.node_id(), req.ref(), req.meta(), req.inline_data(),
                                        cluster_.MeasuredLink(options_.default_link),
                                        std::max<uint64_t>(cluster_.AliveCount(), 2) - 1);
    if (!s.ok()) return s;
    KeyChangedLocked(KeyOf(req.ref()), &after);
    SettleLocked(&after);
  }
  Deliver(after);
  return absl::OkStatus();
}

absl::Status Coordinator::PublishBatch(const proto::PublishBatchRequest& req, proto::PublishBatchReply* reply) {
  After after;
  {
    absl::MutexLock lock(&mu_);
    if (!cluster_.Alive(req.node_id())) {
      return absl::FailedPreconditionError(absl::StrCat("node ", req.node_id(), " is not registered"));
    }
    const LinkModel link = cluster_.MeasuredLink(options_.default_link);
    const uint64_t fanout = std::max<uint64_t>(cluster_.AliveCount(), 2) - 1;
    for (int i = 0; i < req.entries_size(); ++i) {
      const proto::PublishRequest& e = req.entries(i);
      absl::Status s = directory_.Publish(req.node_id(), e.ref(), e.meta(), e.inline_data(), link, fanout);
      if (!s.ok()) {
        proto::BatchEntryError* err = reply->add_errors();
        err->set_index(static_cast<uint32_t>(i));
        err->set_code(static_cast<int32_t>(s.code()));
        err->set_error(std::string(s.message()));
        continue;
      }
      KeyChangedLocked(KeyOf(e.ref()), &after);
    }
    SettleLocked(&after);
  }
  Deliver(after);
  return absl::OkStatus();
}

proto::ExistsReply Coordinator::Exists(const proto::ExistsRequest& req) {
  proto::ExistsReply reply;
  reply.mutable_exists()->Reserve(req.refs_size());
  absl::MutexLock lock(&mu_);
  for (const proto::ObjectRef& ref : req.refs()) reply.add_exists(directory_.View(ref).ok());
  return reply;
}

absl::Status Coordinator::Unpublish(const proto::UnpublishRequest& req) {
  After after;
  {
    absl::MutexLock lock(&mu_);
    const proto::NodeInfo* info = cluster_.Info(req.node_id());
    const std::string name = info != nullptr ? info->name() : "?";
    const bool evicted = req.reason() == proto::UnpublishRequest::EVICTED;
    if (evicted) spdlog::info("node {} ({}) evicted its copy of {}", name, req.node_id(), RefName(req.ref()));
    directory_.Unpublish(req.node_id(), name, req.ref(), evicted);
    // A receiver's slot on that copy is free; a Get may now fail as lost.
    KeyChangedLocked(KeyOf(req.ref()), &after);
    SettleLocked(&after);
  }
  Deliver(after);
  return absl::OkStatus();
}

absl::Status Coordinator::ReportTransfer(const proto::ReportTransferRequest& req) {
  After after;
  absl::Status s;
  {
    absl::MutexLock lock(&mu_);
    s = ReportTransferLocked(req, &after);
  }
  Deliver(after);
  return s;
}

absl::Status Coordinator::ReportTransferLocked(const proto::ReportTransferRequest& req, After* after) {
  absl::StatusOr<bool> live = ApplyReport(directory_, req);
  if (!live.ok()) return live.status();
  if (req.outcome() == proto::ReportTransferRequest::COMPLETED) ++transfers_completed_;
  if (req.outcome() == proto::ReportTransferRequest::SENDER_FAILED) ++sender_failures_;
  if (!*live) {
    // The object was deleted (or deleted and created again) while this copy travelled: it
    // must not survive on the receiver.
    spdlog::info("node {} completed a copy of deleted {} (incarnation {}): telling it to drop it", req.node_id(),
                 RefName(req.ref()), req.incarnation());
    SendLocked({MakeInstruction(req.node_id(), DropMessage(req.ref(), req.incarnation(), 0))}, after);
  }
  CollectiveContext ctx = ContextLocked();
  for (Collective* op : operations_.ForReport(req)) SendLocked(op->OnReport(ctx, req), after);
  // A completed or abandoned pull frees its sender's slot and may end a broadcast.
  KeyChangedLocked(KeyOf(req.ref()), after);
  SettleLocked(after);
  return absl::OkStatus();
}

proto::ListReply Coordinator::List(const proto::ListRequest& req) {
  proto::ListReply reply;
  absl::MutexLock lock(&mu_);
  for (proto::ListEntry& e : directory_.List(req.ns(), req.prefix(), req.limit())) *reply.add_objects() = std::move(e);
  return reply;
}

proto::ClusterStatusReply Coordinator::ClusterStatus() {
  proto::ClusterStatusReply reply;
  absl::MutexLock lock(&mu_);
  for (const proto::NodeInfo* info : cluster_.AllSorted()) *reply.add_nodes() = *info;
  reply.set_objects(directory_.size());
  reply.set_membership_epoch(cluster_.epoch());
  return reply;
}

// ---- waiting operations ---------------------------------------------------------------------

std::shared_ptr<Waiter> Coordinator::AcquireSource(const proto::AcquireSourceRequest* req,
                                                   proto::AcquireSourceReply* reply, Waiter::Reply answer) {
  ++acquires_;
  return std::make_shared<AcquireWait>(this, req, reply, DeadlineFrom(req->timeout_ms()), std::move(answer));
}

std::shared_ptr<Waiter> Coordinator::Locate(const proto::LocateRequest* req, proto::LocateReply* reply,
                                            Waiter::Reply answer) {
  return std::make_shared<LocateWait>(this, req, reply, DeadlineFrom(req->timeout_ms()), std::move(answer));
}

std::shared_ptr<Waiter> Coordinator::Broadcast(const proto::BroadcastRequest* req, proto::BroadcastReply* reply,
                                               Waiter::Reply answer) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = DeadlineFrom(req->timeout_ms());
  return std::make_shared<OperationWait>(
      this, deadline, std::move(answer),
      [req = *req, start, deadline](OpId id) { return std::make_unique<BroadcastCollective>(id, req, start, deadline); },
      [reply](Collective& op) { *reply = std::move(static_cast<BroadcastCollective&>(op).reply()); }, req->wait());
}

std::shared_ptr<Waiter> Coordinator::BroadcastBatch(const proto::BroadcastBatchRequest* req,
                                                    proto::BroadcastBatchReply* reply, Waiter::Reply answer) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = DeadlineFrom(req->timeout_ms());
  const LinkModel link = MeasuredLink();
  return std::make_shared<OperationWait>(
      this, deadline, std::move(answer),
      [req = *req, start, deadline, link, limits = options_.limits](OpId id) {
        return std::make_unique<BatchBroadcastCollective>(id, req, start, deadline, link, limits);
      },
      [reply](Collective& op) { *reply = std::move(static_cast<BatchBroadcastCollective&>(op).reply()); },
      req->wait());
}

std::shared_ptr<Waiter> Coordinator::Delete(const proto::DeleteRequest* req, proto::DeleteReply* reply,
                                            Waiter::Reply answer) {
  return std::make_shared<OperationWait>(
      this, absl::Now() + options_.drop_ack_wait, std::move(answer),
      [ref = req->ref()](OpId id) { return std::make_unique<DeleteCollective>(id, ref); },
      [reply](Collective& op) { *reply = std::move(static_cast<DeleteCollective&>(op).reply()); }, /*wait=*/true);
}

std::shared_ptr<Waiter> Coordinator::DeleteBatch(const proto::DeleteBatchRequest* req, proto::DeleteBatchReply* reply,
                                                 Waiter::Reply answer) {
  return std::make_shared<OperationWait>(
      this, absl::Now() + options_.drop_ack_wait, std::move(answer),
      [refs = std::vector<proto::ObjectRef>(req->refs().begin(), req->refs().end())](OpId id) {
        return std::make_unique<DeleteBatchCollective>(id, refs);
      },
      [reply](Collective& op) { *reply = std::move(static_cast<DeleteBatchCollective&>(op).reply()); },
      /*wait=*/true);
}

std::shared_ptr<Waiter> Coordinator::Reduce(const proto::ReduceRequest* req, proto::ReduceReply* reply, bool all,
                                            Waiter::Reply answer) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = DeadlineFrom(req->timeout_ms());
  const LinkModel link = MeasuredLink();
  return std::make_shared<OperationWait>(
      this, deadline, std::move(answer),
      [req = *req, all, start, deadline, link, limits = options_.limits](OpId id) {
        return std::make_unique<ReduceCollective>(id, req, all, start, deadline, link, limits);
      },
      [reply](Collective& op) { *reply = std::move(static_cast<ReduceCollective&>(op).reply()); }, /*wait=*/true);
}

absl::StatusOr<proto::CreateGroupRequest> Coordinator::ResolveGroupLease(const proto::CreateGroupRequest& req) const {
  if (req.lease_id() == 0) {
    if (!req.lease_holder().empty()) return absl::InvalidArgumentError("a lease holder without a lease id");
    return req;
  }
  if (req.node_ids_size() > 0 || req.node_names_size() > 0) {
    return absl::InvalidArgumentError("name the group's members or the lease they come from, not both");
  }
  if (req.lease_holder().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("lease ", req.lease_id(), ": the holder is missing"));
  }
  if (!lease_nodes_) {
    return absl::FailedPreconditionError("this coordinator has no placement service to resolve leases");
  }
  absl::StatusOr<std::vector<NodeId>> nodes = lease_nodes_(req.lease_id(), req.lease_holder());
  if (!nodes.ok()) return nodes.status();
  if (nodes->size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("lease ", req.lease_id(), " has its bundles on ", nodes->size(),
                                                   " node; a group needs at least 2 (acquire with different_nodes)"));
  }
  proto::CreateGroupRequest out = req;
  for (NodeId n : *nodes) out.add_node_ids(n);
  return out;
}

void Coordinator::OnLeaseEnded(uint64_t lease, const std::string& why) {
  absl::MutexLock lock(&mu_);
  for (const std::string& group : groups_.OnLeaseEnded(lease, why)) {
    spdlog::warn("group '{}' revoked: {}", group, why);
  }
}

absl::Status Coordinator::GroupAdmin(const proto::GroupRequest& req, proto::GroupReply* reply) {
  if (req.verb_case() == proto::GroupRequest::kCreate) {
    absl::StatusOr<proto::CreateGroupRequest> create = ResolveGroupLease(req.create());
    if (!create.ok()) return create.status();
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<proto::GroupInfo> g = groups_.Create(*create, cluster_);
      if (!g.ok()) return g.status();
      spdlog::info("group '{}' created with {} members{}", g->name(), g->members_size(),
                   g->lease_id() != 0 ? absl::StrCat(" from lease ", g->lease_id()) : "");
      *reply->mutable_create() = std::move(*g);
    }
    // A lease that ended between the lookup and the insert was not seen by OnLeaseEnded: look
    // again, now that the group is filed.
    if (create->lease_id() != 0) {
      if (absl::StatusOr<std::vector<NodeId>> again = lease_nodes_(create->lease_id(), create->lease_holder());
          !again.ok()) {
        OnLeaseEnded(create->lease_id(), std::string(again.status().message()));
        reply->mutable_create()->set_revoked(true);
        reply->mutable_create()->set_revoked_why(
            absl::StrCat("the lease it was made from ended: ", again.status().message()));
      }
    }
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  switch (req.verb_case()) {
    case proto::GroupRequest::kRemove: {
      absl::StatusOr<proto::GroupInfo> g = groups_.Remove(req.remove().name());
      if (!g.ok()) return g.status();
      *reply->mutable_remove() = std::move(*g);
      return absl::OkStatus();
    }
    case proto::GroupRequest::kList:
      *reply->mutable_list() = groups_.List();
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("group request without a verb (create, remove, list or collective)");
  }
}

std::shared_ptr<Waiter> Coordinator::RunGroupCollective(const proto::GroupCollectiveRequest* req,
                                                        proto::GroupCollectiveReply* reply, Waiter::Reply answer) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = DeadlineFrom(req->timeout_ms() == 0 ? 60000 : req->timeout_ms());
  return std::make_shared<OperationWait>(
      this, deadline, std::move(answer),
      [this, req = *req, start, deadline](OpId id) {
        mu_.AssertHeld();   // OperationWait::Begin runs under it
        absl::StatusOr<proto::GroupInfo> group;
        if (absl::StatusOr<const proto::GroupInfo*> g = groups_.Usable(req.group()); g.ok()) {
          group = **g;
        } else {
          group = g.status();
        }
        return std::make_unique<GroupCollective>(id, req, std::move(group), start, deadline);
      },
      [this, reply](Collective& op) {
        mu_.AssertHeld();   // OperationWait::Attempt and GiveUp run under it
        auto& g = static_cast<GroupCollective&>(op);
        if (g.status().ok()) groups_.CountCollective(g.group());
        *reply = std::move(g.reply());
      },
      /*wait=*/true);
}

void Coordinator::Start(const std::shared_ptr<Waiter>& waiter) {
  auto* wait = static_cast<CoordWait*>(waiter.get());
  After after;
  {
    absl::MutexLock lock(&mu_);
    if (waiter->done()) return;   // cancelled before it started: Cancel answered it
    if (shutdown_) {
      if (waiter->End(WaitEnd::kShutdown)) CompletedLocked(waiter, &after);
    } else {
      // Filed first, so that what Begin sets off (a death settled below) can poll it.
      waiter->id = next_waiter_id_++;
      waiting_[waiter->id] = waiter;
      wait->Begin(&after);
      // (Completed by Begin or by what it set off: CompletedLocked may then see it twice, and
      // Deliver answers once.)
      if (waiter->done() || waiter->Poll()) {
        CompletedLocked(waiter, &after);
      } else if (absl::Now() >= waiter->deadline()) {
        if (waiter->End(WaitEnd::kDeadline)) CompletedLocked(waiter, &after);
      } else if (call_deadlines_.Set(waiter->id, waiter->deadline())) {
        timer_cv_.Signal();
      }
      SettleLocked(&after);
    }
  }
  Deliver(after);
}

void Coordinator::Cancel(const std::shared_ptr<Waiter>& waiter) {
  After after;
  {
    absl::MutexLock lock(&mu_);
    if (waiter->End(WaitEnd::kCancelled)) CompletedLocked(waiter, &after);
  }
  Deliver(after);
}

// ---- metrics --------------------------------------------------------------------------------

std::string Coordinator::MetricsText() {
  uint64_t alive = 0, objects = 0;
  {
    absl::MutexLock lock(&mu_);
    alive = cluster_.AliveCount();
    objects = directory_.size();
  }
  std::string out;
  absl::StrAppend(&out, "# TYPE ferry_coord_nodes_alive gauge\nferry_coord_nodes_alive ", alive, "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_objects gauge\nferry_coord_objects ", objects, "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_acquires_total counter\nferry_coord_acquires_total ", acquires_.load(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_transfers_completed_total counter\nferry_coord_transfers_completed_total ",
                  transfers_completed_.load(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_sender_failures_total counter\nferry_coord_sender_failures_total ",
                  sender_failures_.load(), "\n");
  absl::StrAppend(&out, "# TYPE ferry_coord_nodes_died_total counter\nferry_coord_nodes_died_total ",
                  nodes_died_.load(), "\n");
  return out;
}

}  // namespace ferry::control
