#include "control/placement/placement_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/placement/placement_wire.h"
#include "proto/status_bridge.h"
#include "spdlog/spdlog.h"

namespace ferry::control::placement {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

absl::Status Unavailable() { return absl::UnavailableError("placement service shutting down"); }

absl::Status CheckLeaseRef(uint64_t lease, const std::string& holder) {
  if (lease == 0) return absl::InvalidArgumentError("lease_id must be non-zero");
  if (holder.empty() || holder.size() > kMaxHolderLength) {
    return absl::InvalidArgumentError(absl::StrCat("holder must be 1..", kMaxHolderLength, " characters"));
  }
  return absl::OkStatus();
}

}  // namespace

// A waiting Acquire. It is finished exactly once, by whoever removed it from waiting_ (a grant,
// a failure, shutdown, or its own cancellation), after mu_ is released.
class PlacementService::AcquireCall final : public grpc::ServerUnaryReactor {
 public:
  AcquireCall(PlacementService* service, pb::AcquireReply* reply, std::string holder)
      : service_(service), reply_(reply), holder_(std::move(holder)), since_(absl::Now()) {}

  void set_request(RequestId request) { request_ = request; }
  pb::AcquireReply* reply() { return reply_; }
  absl::Time since() const { return since_; }
  const std::string& holder() const { return holder_; }

  void OnCancel() override { service_->CancelCall(request_, this); }
  void OnDone() override { delete this; }

 private:
  PlacementService* const service_;
  pb::AcquireReply* const reply_;
  const std::string holder_;
  const absl::Time since_;
  RequestId request_ = 0;  // set before the call is filed
};

PlacementService::PlacementService(PlacementServiceOptions options)
    : options_(options), manager_(PlacementManager::Options{.first_lease_id = 1, .max_waiters = options.max_waiters}) {
  timer_ = std::thread([this] { TimerLoop(); });
}

PlacementService::~PlacementService() { Shutdown(); }

void PlacementService::Shutdown() {
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      for (auto& [id, call] : waiting_) answers.calls.emplace_back(call, Unavailable());
      waiting_.clear();
      timer_cv_.Signal();
    }
  }
  Finish(answers);
  if (timer_.joinable()) timer_.join();
}

void PlacementService::Finish(Answers& answers) {
  for (auto& [call, status] : answers.calls) call->Finish(ToGrpc(status));
  answers.calls.clear();
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
      AcquireCall* call = it->second;
      waiting_.erase(it);
      FillLeaseLocked(g.lease, call->reply()->mutable_lease());
      call->reply()->set_waited_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(now - call->since())));
      answers.calls.emplace_back(call, absl::OkStatus());
    }
    for (RequestFailure& f : events.failed) {
      auto it = waiting_.find(f.request);
      if (it == waiting_.end()) continue;
      answers.calls.emplace_back(it->second, std::move(f.status));
      waiting_.erase(it);
    }
    for (LostLease& lost : events.lost) {
      RememberLostLocked(lost.lease,
                         absl::StrCat("lease ", lost.lease, " of '", lost.holder, "' was lost: ", lost.reason));
    }
    if (!events.granted.empty()) WakeTimerLocked();  // new leases, new expiries
    events = std::move(more);
  }
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
    PlacementEvents events = manager_.Advance(absl::Now());
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

grpc::ServerUnaryReactor* PlacementService::Acquire(grpc::CallbackServerContext* ctx, const pb::AcquireRequest* req,
                                                    pb::AcquireReply* reply) {
  return StartAcquire(ctx, req, reply);
}

grpc::ServerUnaryReactor* PlacementService::StartAcquire(grpc::CallbackServerContext* ctx,
                                                         const pb::AcquireRequest* req,
                                                         pb::AcquireReply* reply) {
  const absl::Time now = absl::Now();
  const WireLimits limits{options_.max_wait, options_.default_ttl, options_.max_ttl};
  absl::StatusOr<PlacementRequest> request = RequestFromProto(*req, limits, now);
  if (!request.ok()) return Answer(ctx, request.status());
  if (absl::Status s = ValidateRequest(*request, now); !s.ok()) return Answer(ctx, s);
  auto* call = new AcquireCall(this, reply, request->holder);
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<AcquireResult> result =
        shutdown_ ? absl::StatusOr<AcquireResult>(Unavailable()) : manager_.Acquire(*std::move(request), now);
    status = result.status();
    if (result.ok() && result->lease.has_value()) {
      FillLeaseLocked(*result->lease, reply->mutable_lease());
      WakeTimerLocked();  // its expiry may be the earliest deadline now
    } else if (result.ok()) {
      call->set_request(result->queued);
      waiting_[result->queued] = call;
      WakeTimerLocked();
      return call;  // answered by a later grant, failure, deadline or cancellation
    }
  }
  call->Finish(ToGrpc(status));
  return call;
}

void PlacementService::CancelCall(RequestId request, AcquireCall* call) {
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiting_.find(request);
    if (it == waiting_.end() || it->second != call) {
      // Answered already. If the answer was a grant, the client that cancelled never sees it:
      // release the lease now instead of leaving it held until it expires.
      const pb::AcquireReply* granted = call->reply();
      if (!shutdown_ && granted->has_lease() && granted->lease().lease_id() != 0) {
        absl::StatusOr<PlacementEvents> events =
            manager_.Release(granted->lease().lease_id(), call->holder(), absl::Now());
        if (events.ok()) HandleLocked(*std::move(events), answers);
      }
    } else {
      waiting_.erase(it);
      answers.calls.emplace_back(call, absl::CancelledError("the Acquire call was cancelled by its client"));
      absl::StatusOr<PlacementEvents> events = manager_.Cancel(request, call->holder(), absl::Now());
      if (events.ok()) HandleLocked(*std::move(events), answers);
    }
  }
  Finish(answers);
}

grpc::ServerUnaryReactor* PlacementService::Release(grpc::CallbackServerContext* ctx, const pb::ReleaseRequest* req,
                                                    pb::ReleaseReply*) {
  if (absl::Status s = CheckLeaseRef(req->lease_id(), req->holder()); !s.ok()) return Answer(ctx, s);
  Answers answers;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Answer(ctx, Unavailable());
    absl::StatusOr<PlacementEvents> events = manager_.Release(req->lease_id(), req->holder(), absl::Now());
    status = ExplainLocked(req->lease_id(), events.status());
    if (events.ok()) HandleLocked(*std::move(events), answers);
  }
  Finish(answers);
  return Answer(ctx, status);
}

grpc::ServerUnaryReactor* PlacementService::Renew(grpc::CallbackServerContext* ctx, const pb::RenewRequest* req,
                                                  pb::RenewReply* reply) {
  if (absl::Status s = CheckLeaseRef(req->lease_id(), req->holder()); !s.ok()) return Answer(ctx, s);
  absl::MutexLock lock(&mu_);
  if (shutdown_) return Answer(ctx, Unavailable());
  absl::StatusOr<absl::Time> expiry = manager_.Renew(req->lease_id(), req->holder(), absl::Now());
  if (expiry.ok()) reply->set_expiry_unix_ms(absl::ToUnixMillis(*expiry));
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
  return Answer(ctx, absl::OkStatus());
}

}  // namespace ferry::control::placement
