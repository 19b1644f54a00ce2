#include "control/placement/placement_service.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "control/placement/placement_wire.h"
#include "proto/status_bridge.h"
#include "spdlog/spdlog.h"

namespace ferry::control::placement {
namespace {


absl::Status Unavailable() { return absl::UnavailableError("placement service shutting down"); }

uint64_t RandomIncarnation() {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device() ^
                      static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  uint64_t v = 0;
  while (v == 0) v = rng();
  return v;
}

absl::Status CheckLeaseRef(uint64_t lease, const std::string& holder) {
  if (lease == 0) return absl::InvalidArgumentError("lease_id must be non-zero");
  if (holder.empty() || holder.size() > kMaxHolderLength) {
    return absl::InvalidArgumentError(absl::StrCat("holder must be 1..", kMaxHolderLength, " characters"));
  }
  return absl::OkStatus();
}

}  // namespace

// A waiting Acquire or AcquireBatch: a unary reactor whose request slots are answered one by
// one. It is finished exactly once, by whoever resolves its last open slot (a grant, a failure,
// shutdown, or its own cancellation), after mu_ is released.
class PlacementService::PendingCall : public grpc::ServerUnaryReactor {
 public:
  PendingCall(PlacementService* service, size_t slots) : service_(service), since_(absl::Now()), open_(slots) {}

  absl::Time since() const { return since_; }
  const std::string& holder(size_t slot) const { return holders_[slot]; }
  // Slot bookkeeping (under the service's mu_).
  void Open(size_t slot, std::string holder, RequestId request) {
    if (holders_.size() <= slot) holders_.resize(slot + 1);
    if (requests_.size() <= slot) requests_.resize(slot + 1, 0);
    holders_[slot] = std::move(holder);
    requests_[slot] = request;
  }
  RequestId request(size_t slot) const { return slot < requests_.size() ? requests_[slot] : 0; }
  size_t slots() const { return requests_.size(); }
  // True when this was the last open slot.
  bool Close() { return --open_ == 0; }

  virtual pb::AcquireReply* reply(size_t slot) = 0;
  // Records the outcome of slot `slot` (under mu_).
  virtual void SetOutcome(size_t slot, const absl::Status& status) = 0;
  // Finishes the call (after mu_ is released). `status`: the last slot's outcome.
  virtual void Complete(const absl::Status& status) = 0;

  void OnCancel() override { service_->CancelCall(this); }
  void OnDone() override { delete this; }

 private:
  PlacementService* const service_;
  const absl::Time since_;
  size_t open_;
  std::vector<std::string> holders_;
  std::vector<RequestId> requests_;  // 0: not waiting
};

class PlacementService::AcquireCall final : public PendingCall {
 public:
  AcquireCall(PlacementService* service, pb::AcquireReply* reply) : PendingCall(service, 1), reply_(reply) {}
  pb::AcquireReply* reply(size_t) override { return reply_; }
  void SetOutcome(size_t, const absl::Status&) override {}
  void Complete(const absl::Status& status) override { Finish(ToGrpc(status)); }

 private:
  pb::AcquireReply* const reply_;
};

class PlacementService::BatchCall final : public PendingCall {
 public:
  BatchCall(PlacementService* service, pb::AcquireBatchReply* reply, size_t n)
      : PendingCall(service, n), reply_(reply) {
    for (size_t i = 0; i < n; ++i) reply_->add_results();
  }
  pb::AcquireReply* reply(size_t slot) override {
    return reply_->mutable_results(static_cast<int>(slot))->mutable_reply();
  }
  void SetOutcome(size_t slot, const absl::Status& status) override {
    pb::AcquireOutcome* out = reply_->mutable_results(static_cast<int>(slot));
    out->set_code(static_cast<int32_t>(status.code()));
    out->set_message(std::string(status.message()));
    if (!status.ok()) out->clear_reply();
  }
  void Complete(const absl::Status&) override { Finish(grpc::Status::OK); }

 private:
  pb::AcquireBatchReply* const reply_;
};

PlacementService::PlacementService(PlacementServiceOptions options)
    : options_(options),
      incarnation_(options.incarnation != 0 ? options.incarnation : RandomIncarnation()),
      manager_(PlacementManager::Options{.first_lease_id = 1, .max_waiters = options.max_waiters}),
      holders_file_(options.holders_file) {
  {
    absl::MutexLock lock(&mu_);
    StartRebuildLocked(absl::Now());
  }
  timer_ = std::thread([this] { TimerLoop(); });
}

PlacementService::~PlacementService() { Shutdown(); }

void PlacementService::Shutdown() {
  Answers answers;
  std::vector<std::shared_ptr<LeaseWatch>> watches_ended;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      std::vector<Waiting> all;
      for (auto& [id, w] : waiting_) all.push_back(w);
      waiting_.clear();
      for (const Waiting& w : all) ResolveLocked(w.call, w.slot, Unavailable(), answers);
      for (auto& [holder, list] : watches_) {
        for (std::shared_ptr<LeaseWatch>& w : list) watches_ended.push_back(w);
      }
      timer_cv_.Signal();
    }
  }
  Finish(answers);
  EndWatches(watches_ended);
  if (timer_.joinable()) timer_.join();
}

void PlacementService::Finish(Answers& answers) {
  for (auto& [call, status] : answers.calls) call->Complete(status);
  answers.calls.clear();
  WriteEvents(answers);
  if (lease_ended_) {
    for (const auto& [lease, why] : answers.ended) lease_ended_(lease, why);
  }
  answers.ended.clear();
}

absl::StatusOr<std::vector<NodeId>> PlacementService::LeaseNodes(LeaseId lease, const std::string& holder) {
  absl::MutexLock lock(&mu_);
  const Lease* l = manager_.leases().Find(lease);
  if (l == nullptr) return ExplainLocked(lease, absl::NotFoundError(absl::StrCat("no lease ", lease, " is held")));
  if (l->holder != holder) {
    return absl::PermissionDeniedError(
        absl::StrCat("lease ", lease, " is held by '", l->holder, "', not by '", holder, "'"));
  }
  std::vector<NodeId> nodes;
  for (const LeaseBundle& b : l->bundles) {
    if (std::find(nodes.begin(), nodes.end(), b.node) == nodes.end()) nodes.push_back(b.node);
  }
  return nodes;
}

grpc::ServerUnaryReactor* PlacementService::Answer(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

// ---- membership ---------------------------------------------------------------------------

void PlacementService::OnMembership(const proto::NodeInfo& node, bool alive) {
  if (node.node_id() == 0) return;
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const std::string who = absl::StrCat(node.name().empty() ? "?" : node.name(), " (", node.node_id(), ")");
    if (!alive) {
      if (manager_.table().HasNode(node.node_id())) {
        RemoveNodeLocked(node.node_id(), "node " + NodeNameLocked(node.node_id()) + " died", answers);
      }
      names_.erase(node.node_id());
    } else {
      if (manager_.table().HasNode(node.node_id())) {
        RemoveNodeLocked(node.node_id(), "node " + who + " re-registered", answers);
      }
      ResourceMap resources;
      for (const auto& [name, value] : node.resources()) {
        absl::StatusOr<int64_t> amount = ParseAmount(value, absl::StrCat("resource '", name, "'"));
        if (amount.ok() && ValidateResourceName(name).ok()) {
          resources[name] = *amount;
        } else {
          spdlog::warn("placement: node {} advertises an unusable resource '{}' = {}; skipped", who, name, value);
        }
      }
      Labels labels(node.labels().begin(), node.labels().end());
      absl::StatusOr<PlacementEvents> events = manager_.AddNode(node.node_id(), labels, resources, absl::Now());
      if (!events.ok()) {  // labels the table refuses: add the node without them
        spdlog::warn("placement: node {}: {}; added without labels", who, std::string(events.status().message()));
        events = manager_.AddNode(node.node_id(), {}, resources, absl::Now());
      }
      if (events.ok()) {
        names_[node.node_id()] = node.name();
        HandleLocked(*std::move(events), answers);
      } else {
        spdlog::warn("placement: node {} not added: {}", who, std::string(events.status().message()));
      }
    }
    WakeTimerLocked();
  }
  Finish(answers);
}

absl::Status PlacementService::AddNode(NodeId node, std::string name, Labels labels, const ResourceMap& resources) {
  Answers answers;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Unavailable();
    absl::StatusOr<PlacementEvents> events = manager_.AddNode(node, std::move(labels), resources, absl::Now());
    if (events.ok()) {
      names_[node] = std::move(name);
      HandleLocked(*std::move(events), answers);
    }
    status = events.status();
  }
  Finish(answers);
  return status;
}

void PlacementService::RemoveNodeLocked(NodeId node, const std::string& why, Answers& answers) {
  absl::StatusOr<PlacementEvents> events = manager_.RemoveNode(node, absl::Now());
  if (!events.ok()) {
    spdlog::warn("placement: removing node {}: {}", node, std::string(events.status().message()));
    return;
  }
  for (LostLease& lost : events->lost) lost.reason = why;
  spdlog::info("placement: {}: {} lease(s) released", why, events->lost.size());
  HandleLocked(*std::move(events), answers);
}

// ---- events -------------------------------------------------------------------------------

void PlacementService::HandleLocked(PlacementEvents events, Answers& answers) {
  // A grant nobody waits for any more is given back, which may grant others: loop until quiet.
  while (!events.empty()) {
    PlacementEvents more;
    const absl::Time now = absl::Now();
    for (Grant& g : events.granted) {
      auto it = waiting_.find(g.request);
      if (it == waiting_.end()) {
        absl::StatusOr<PlacementEvents> released = manager_.Release(g.lease.id, g.lease.holder, now);
        if (released.ok()) more.Append(*std::move(released));
        continue;
      }
      const Waiting w = it->second;
      waiting_.erase(it);
      pb::AcquireReply* reply = w.call->reply(w.slot);
      FillLeaseLocked(g.lease, reply->mutable_lease());
      reply->set_waited_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(now - w.call->since())));
      HeldLocked(g.lease.holder);
      ResolveLocked(w.call, w.slot, absl::OkStatus(), answers);
    }
    for (RequestFailure& f : events.failed) {
      auto it = waiting_.find(f.request);
      if (it == waiting_.end()) continue;
      const Waiting w = it->second;
      waiting_.erase(it);
      ResolveLocked(w.call, w.slot, std::move(f.status), answers);
    }
    for (LostLease& lost : events.lost) {
      std::string why = absl::StrCat("lease ", lost.lease, " of '", lost.holder, "' was lost: ", lost.reason);
      PushLossLocked(lost.holder, lost.lease, why, answers);
      answers.ended.emplace_back(lost.lease, why);
      RememberLostLocked(lost.lease, std::move(why));
      UnheldLocked(lost.holder);
    }
    if (!events.granted.empty()) WakeTimerLocked();  // new leases, new expiries
    events = std::move(more);
  }
}

void PlacementService::ResolveLocked(PendingCall* call, size_t slot, absl::Status status, Answers& answers) {
  call->SetOutcome(slot, status);
  call->Open(slot, call->holder(slot), 0);
  if (call->Close()) answers.calls.emplace_back(call, std::move(status));
}

absl::Status PlacementService::CheckIncarnation(LeaseId lease, uint64_t incarnation) const {
  if (incarnation == 0 || incarnation == incarnation_) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat("lease ", lease, " names coordinator incarnation ", incarnation,
                                         ", but this is incarnation ", incarnation_,
                                         ": the coordinator restarted; re-report the lease (ReportLeases)"));
}

void PlacementService::RememberLostLocked(LeaseId lease, std::string reason) {
  if (lost_.insert_or_assign(lease, std::move(reason)).second) lost_order_.push_back(lease);
  while (lost_order_.size() > kLostMemory) {
    lost_.erase(lost_order_.front());
    lost_order_.pop_front();
  }
}

absl::Status PlacementService::ExplainLocked(LeaseId lease, absl::Status status) const {
  if (!absl::IsNotFound(status)) return status;
  auto it = lost_.find(lease);
  return it == lost_.end() ? status : absl::NotFoundError(it->second);
}

std::string PlacementService::NodeNameLocked(NodeId node) const {
  auto it = names_.find(node);
  return absl::StrCat(it == names_.end() || it->second.empty() ? "?" : it->second, " (", node, ")");
}

void PlacementService::FillLeaseLocked(const Lease& lease, pb::Lease* out) const {
  out->set_lease_id(lease.id);
  out->set_holder(lease.holder);
  out->set_alternative(static_cast<uint32_t>(lease.alternative));
  out->set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(lease.ttl)));
  out->set_expiry_unix_ms(absl::ToUnixMillis(lease.expiry));
  out->set_incarnation(incarnation_);
  for (const LeaseBundle& b : lease.bundles) {
    pb::LeasedBundle* pb = out->add_bundles();
    pb->set_node_id(b.node);
    auto it = names_.find(b.node);
    if (it != names_.end()) pb->set_node_name(it->second);
    for (const Demand& d : b.demands) {
      (*pb->mutable_amounts())[manager_.table().Name(d.resource)] = static_cast<double>(d.amount);
    }
  }
}

// ---- timer --------------------------------------------------------------------------------

void PlacementService::WakeTimerLocked() {
  if (manager_.NextDeadline() < timer_sleeps_until_) timer_cv_.Signal();
}

void PlacementService::TimerLoop() {
  mu_.Lock();
  while (!shutdown_) {
    const absl::Time next = manager_.NextDeadline();
    if (absl::Now() < next) {
      timer_sleeps_until_ = next;
      timer_cv_.WaitWithDeadline(&mu_, next);
      timer_sleeps_until_ = absl::InfinitePast();  // awake: nobody needs to signal
      continue;
    }
    Answers answers;
    const absl::Time now = absl::Now();
    if (manager_.rebuilding() && now >= manager_.rebuild_until()) {
      EndRebuildLocked(now, "its time is up", answers);
    }
    MaybeTrimHoldersLocked(now);
    PlacementEvents events = manager_.Advance(now);
    for (LostLease& lost : events.lost) {
      if (lost.reason.empty()) lost.reason = "it expired (not renewed within its ttl)";
    }
    HandleLocked(std::move(events), answers);
    mu_.Unlock();
    Finish(answers);
    mu_.Lock();
  }
  mu_.Unlock();
}

// ---- RPCs ---------------------------------------------------------------------------------

grpc::ServerUnaryReactor* PlacementService::SetResource(grpc::CallbackServerContext* ctx,
                                                        const pb::SetResourceRequest* req,
                                                        pb::SetResourceReply* reply) {
  absl::StatusOr<int64_t> capacity = ParseAmount(req->capacity(), "capacity");
  if (!capacity.ok()) return Answer(ctx, capacity.status());
  if (absl::Status s = ValidateResourceName(req->name()); !s.ok()) return Answer(ctx, s);
  absl::StatusOr<NodeSelector> selector = SelectorFromProto(req->selector());
  if (!selector.ok()) return Answer(ctx, selector.status());
  Answers answers;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Answer(ctx, Unavailable());
    std::vector<NodeId> nodes;
    absl::StatusOr<PlacementEvents> events =
        manager_.SetResource(req->name(), *capacity, *selector, absl::Now(), &nodes);
    status = events.status();
    if (events.ok()) {
      for (NodeId n : nodes) reply->add_nodes(n);
      HandleLocked(*std::move(events), answers);
      WakeTimerLocked();
    }
  }
  Finish(answers);
  return Answer(ctx, status);
}

grpc::ServerUnaryReactor* PlacementService::ClusterResources(grpc::CallbackServerContext* ctx,
                                                             const pb::ClusterResourcesRequest*,
                                                             pb::ClusterResourcesReply* reply) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return Answer(ctx, Unavailable());
  for (const NodeResourcesView& v : manager_.ClusterResources()) {
    pb::NodeResources* n = reply->add_nodes();
    n->set_node_id(v.node);
    auto it = names_.find(v.node);
    if (it != names_.end()) n->set_name(it->second);
    n->mutable_labels()->insert(v.labels.begin(), v.labels.end());
    for (const auto& [name, amounts] : v.resources) {
      pb::ResourceAmounts& a = (*n->mutable_resources())[name];
      a.set_capacity(static_cast<double>(amounts.capacity));
      a.set_available(static_cast<double>(amounts.available));
    }
  }
  return Answer(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* PlacementService::Acquire(grpc::CallbackServerContext*, const pb::AcquireRequest* req,
                                                    pb::AcquireReply* reply) {
  // Converted and checked before the lock (it needs no shared state).
  const absl::Time now = absl::Now();
  absl::StatusOr<PlacementRequest> request = PrepareRequest(*req, now);
  auto* call = new AcquireCall(this, reply);
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    StartOneLocked(std::move(request), req->holder(), call, 0, now, answers);
  }
  Finish(answers);
  return call;
}

grpc::ServerUnaryReactor* PlacementService::AcquireBatch(grpc::CallbackServerContext* ctx,
                                                         const pb::AcquireBatchRequest* req,
                                                         pb::AcquireBatchReply* reply) {
  if (req->requests_size() == 0 || req->requests_size() > kMaxBatch) {
    return Answer(ctx, absl::InvalidArgumentError(absl::StrCat("AcquireBatch takes 1..", kMaxBatch,
                                                               " requests, got ", req->requests_size())));
  }
  const absl::Time now = absl::Now();
  std::vector<absl::StatusOr<PlacementRequest>> requests;
  requests.reserve(req->requests_size());
  for (const pb::AcquireRequest& r : req->requests()) requests.push_back(PrepareRequest(r, now));
  auto* call = new BatchCall(this, reply, requests.size());
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < requests.size(); ++i) {
      StartOneLocked(std::move(requests[i]), req->requests(static_cast<int>(i)).holder(), call, i, now, answers);
    }
  }
  Finish(answers);
  return call;
}

absl::StatusOr<PlacementRequest> PlacementService::PrepareRequest(const pb::AcquireRequest& req,
                                                                 absl::Time now) const {
  const WireLimits limits{options_.max_wait, options_.default_ttl, options_.max_ttl};
  absl::StatusOr<PlacementRequest> request = RequestFromProto(req, limits, now);
  if (!request.ok()) return request.status();
  if (absl::Status s = ValidateRequest(*request, now); !s.ok()) return s;
  return request;
}

void PlacementService::StartOneLocked(absl::StatusOr<PlacementRequest> request, const std::string& holder,
                                      PendingCall* call, size_t slot, absl::Time now, Answers& answers) {
  call->Open(slot, holder, 0);
  if (request.ok() && shutdown_) request = Unavailable();
  if (request.ok() && manager_.rebuilding() && request->deadline <= manager_.rebuild_until()) {
    request = absl::UnavailableError(absl::StrCat(
        "placement state is being rebuilt after a coordinator restart until ",
        absl::FormatTime(manager_.rebuild_until()), ", after this request's deadline; retry later"));
  }
  if (!request.ok()) return ResolveLocked(call, slot, request.status(), answers);
  absl::StatusOr<AcquireResult> result = manager_.Acquire(*std::move(request), now);
  if (!result.ok()) return ResolveLocked(call, slot, result.status(), answers);
  WakeTimerLocked();  // a lease's expiry or a request's deadline may be the earliest now
  if (result->lease.has_value()) {
    FillLeaseLocked(*result->lease, call->reply(slot)->mutable_lease());
    HeldLocked(holder);
    return ResolveLocked(call, slot, absl::OkStatus(), answers);
  }
  call->Open(slot, holder, result->queued);
  waiting_[result->queued] = Waiting{call, slot};
}

void PlacementService::CancelCall(PendingCall* call) {
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    for (size_t slot = 0; slot < call->slots(); ++slot) {
      const RequestId request = call->request(slot);
      auto it = request == 0 ? waiting_.end() : waiting_.find(request);
      if (it != waiting_.end() && it->second.call == call) {
        waiting_.erase(it);
        absl::StatusOr<PlacementEvents> events = manager_.Cancel(request, call->holder(slot), absl::Now());
        if (events.ok()) HandleLocked(*std::move(events), answers);
        ResolveLocked(call, slot, absl::CancelledError("the Acquire call was cancelled by its client"), answers);
        continue;
      }
      // Answered already. If the answer was a grant, the client that cancelled never sees it:
      // release the lease now instead of leaving it held until it expires.
      const pb::AcquireReply* granted = call->reply(slot);
      if (!shutdown_ && granted->has_lease() && granted->lease().lease_id() != 0) {
        ReleaseLocked(granted->lease().lease_id(), call->holder(slot), 0, answers).IgnoreError();
      }
    }
  }
  Finish(answers);
}

absl::Status PlacementService::ReleaseLocked(LeaseId lease, const std::string& holder, uint64_t incarnation,
                                             Answers& answers) {
  if (absl::Status s = CheckIncarnation(lease, incarnation); !s.ok()) return s;
  const absl::Time now = absl::Now();
  absl::StatusOr<PlacementEvents> events = manager_.Release(lease, holder, now);
  if (!events.ok()) return ExplainLocked(lease, events.status());
  answers.ended.emplace_back(lease, absl::StrCat("lease ", lease, " was released by its holder '", holder, "'"));
  UnheldLocked(holder);
  HandleLocked(*std::move(events), answers);
  MaybeTrimHoldersLocked(now);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* PlacementService::Release(grpc::CallbackServerContext* ctx, const pb::ReleaseRequest* req,
                                                    pb::ReleaseReply*) {
  if (absl::Status s = CheckLeaseRef(req->lease_id(), req->holder()); !s.ok()) return Answer(ctx, s);
  Answers answers;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Answer(ctx, Unavailable());
    status = ReleaseLocked(req->lease_id(), req->holder(), req->incarnation(), answers);
  }
  Finish(answers);
  return Answer(ctx, status);
}

grpc::ServerUnaryReactor* PlacementService::ReleaseBatch(grpc::CallbackServerContext* ctx,
                                                         const pb::ReleaseBatchRequest* req,
                                                         pb::ReleaseBatchReply* reply) {
  if (req->lease_ids_size() == 0 || req->lease_ids_size() > kMaxBatch) {
    return Answer(ctx, absl::InvalidArgumentError(absl::StrCat("ReleaseBatch takes 1..", kMaxBatch,
                                                               " lease ids, got ", req->lease_ids_size())));
  }
  if (absl::Status s = CheckLeaseRef(1, req->holder()); !s.ok()) return Answer(ctx, s);
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Answer(ctx, Unavailable());
    for (const uint64_t id : req->lease_ids()) {
      absl::Status s = id == 0 ? absl::InvalidArgumentError("lease_id must be non-zero")
                               : ReleaseLocked(id, req->holder(), req->incarnation(), answers);
      pb::ReleaseOutcome* out = reply->add_results();
      out->set_code(static_cast<int32_t>(s.code()));
      out->set_message(std::string(s.message()));
    }
  }
  Finish(answers);
  return Answer(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* PlacementService::Renew(grpc::CallbackServerContext* ctx, const pb::RenewRequest* req,
                                                  pb::RenewReply* reply) {
  if (absl::Status s = CheckLeaseRef(req->lease_id(), req->holder()); !s.ok()) return Answer(ctx, s);
  absl::MutexLock lock(&mu_);
  if (shutdown_) return Answer(ctx, Unavailable());
  if (absl::Status s = CheckIncarnation(req->lease_id(), req->incarnation()); !s.ok()) return Answer(ctx, s);
  const absl::Time now = absl::Now();
  absl::StatusOr<absl::Time> expiry = manager_.Renew(req->lease_id(), req->holder(), now);
  if (expiry.ok()) reply->set_expiry_unix_ms(absl::ToUnixMillis(*expiry));
  reply->set_incarnation(incarnation_);
  MaybeTrimHoldersLocked(now);
  return Answer(ctx, ExplainLocked(req->lease_id(), expiry.status()));
}

grpc::ServerUnaryReactor* PlacementService::ListLeases(grpc::CallbackServerContext* ctx,
                                                       const pb::ListLeasesRequest* req,
                                                       pb::ListLeasesReply* reply) {
  if (req->holder().size() > kMaxHolderLength) {
    return Answer(ctx, absl::InvalidArgumentError(absl::StrCat("holder must be at most ", kMaxHolderLength,
                                                               " characters")));
  }
  absl::MutexLock lock(&mu_);
  if (shutdown_) return Answer(ctx, Unavailable());
  std::vector<const Lease*> leases;
  for (const auto& [id, lease] : manager_.leases().leases()) {
    if (req->holder().empty() || lease.holder == req->holder()) leases.push_back(&lease);
  }
  std::sort(leases.begin(), leases.end(), [](const Lease* a, const Lease* b) { return a->id < b->id; });
  for (const Lease* l : leases) FillLeaseLocked(*l, reply->add_leases());
  reply->set_incarnation(incarnation_);
  reply->set_rebuilding(manager_.rebuilding());
  return Answer(ctx, absl::OkStatus());
}

}  // namespace ferry::control::placement
