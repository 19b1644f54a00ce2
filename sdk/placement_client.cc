// PlacementClient: the SDK's side of proto/placement.proto (a synchronous stub over one gRPC
// channel to ferry-coord), the conversions between the public types and the messages, and the
// books of held leases that re-reporting needs (sdk/placement_upkeep.cc).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/status_bridge.h"
#include "sdk/placement_internal.h"

namespace ferry {

namespace {

constexpr absl::Duration kUnaryTimeout = absl::Seconds(30);
// How much longer than the request's own timeout the Acquire call may take (queueing, transit).
constexpr absl::Duration kAcquireSlack = absl::Seconds(30);

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

pb::Constraint ToProto(PlacementConstraint c) {
  switch (c) {
    case PlacementConstraint::kSameNode: return pb::CONSTRAINT_SAME_NODE;
    case PlacementConstraint::kDifferentNodes: return pb::CONSTRAINT_DIFFERENT_NODES;
    case PlacementConstraint::kSameLabelValue: return pb::CONSTRAINT_SAME_LABEL_VALUE;
    case PlacementConstraint::kNone: break;
  }
  return pb::CONSTRAINT_NONE;
}

absl::Status CheckDuration(absl::Duration d, const char* what) {
  if (d < absl::ZeroDuration() || d > absl::Milliseconds(UINT32_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be in [0, ", UINT32_MAX, "] ms, got ",
                                                   absl::FormatDuration(d)));
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::AcquireRequest> ToProto(const PlacementRequest& r, const std::string& holder) {
  if (absl::Status s = CheckDuration(r.timeout, "timeout"); !s.ok()) return s;
  if (absl::Status s = CheckDuration(r.lease_ttl, "lease_ttl"); !s.ok()) return s;
  pb::AcquireRequest out;
  out.set_holder(holder);
  out.set_priority(r.priority);
  out.set_timeout_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(r.timeout)));
  out.set_lease_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(r.lease_ttl)));
  out.set_scoring(r.scoring == PlacementScoring::kSpread ? pb::SCORING_SPREAD : pb::SCORING_PACK);
  for (const PlacementAlternative& a : r.alternatives) {
    pb::Alternative* pa = out.add_alternatives();
    pa->set_constraint(ToProto(a.constraint));
    pa->set_label_key(a.label_key);
    for (const ResourceAmounts& b : a.bundles) pa->add_bundles()->mutable_amounts()->insert(b.begin(), b.end());
  }
  return out;
}

}  // namespace

PlacementLease LeaseFromProto(const pb::Lease& l) {
  PlacementLease out;
  out.id = l.lease_id();
  out.holder = l.holder();
  out.alternative = l.alternative();
  out.ttl = absl::Milliseconds(l.ttl_ms());
  out.expiry = absl::FromUnixMillis(l.expiry_unix_ms());
  out.incarnation = l.incarnation();
  for (const pb::LeasedBundle& b : l.bundles()) {
    out.bundles.push_back(LeasedBundle{b.node_id(), b.node_name(), ResourceAmounts(b.amounts().begin(),
                                                                                   b.amounts().end())});
  }
  return out;
}

namespace {

constexpr int kMaxBatch = 1024;
// How long a re-report after a restart keeps trying while nodes rejoin.
constexpr absl::Duration kRecoverPatience = absl::Seconds(30);

pb::NodeSelector ToProto(const ResourceSelector& s) {
  pb::NodeSelector out;
  switch (s.kind) {
    case ResourceSelector::Kind::kNode: out.set_node_id(s.node_id); break;
    case ResourceSelector::Kind::kLabels:
      out.mutable_labels()->mutable_labels()->insert(s.labels.begin(), s.labels.end());
      break;
    case ResourceSelector::Kind::kCoverFree:
      out.mutable_cover_free()->mutable_amounts()->insert(s.cover.begin(), s.cover.end());
      out.mutable_cover_free()->set_max_nodes(s.max_nodes);
      break;
  }
  return out;
}

}  // namespace

ResourceSelector ResourceSelector::Node(uint64_t node_id) {
  ResourceSelector s;
  s.node_id = node_id;
  return s;
}
ResourceSelector ResourceSelector::WithLabels(std::map<std::string, std::string> labels) {
  ResourceSelector s;
  s.kind = Kind::kLabels;
  s.labels = std::move(labels);
  return s;
}
ResourceSelector ResourceSelector::CoverFree(ResourceAmounts cover, int64_t max_nodes) {
  ResourceSelector s;
  s.kind = Kind::kCoverFree;
  s.cover = std::move(cover);
  s.max_nodes = max_nodes;
  return s;
}

absl::StatusOr<std::unique_ptr<PlacementClient>> PlacementClient::Connect(const std::string& coord_address,
                                                                          std::string holder,
                                                                          absl::Duration connect_timeout) {
  PlacementClientOptions options;
  options.connect_timeout = connect_timeout;
  return Connect(coord_address, std::move(holder), std::move(options));
}

absl::StatusOr<std::unique_ptr<PlacementClient>> PlacementClient::Connect(const std::string& coord_address,
                                                                          std::string holder,
                                                                          PlacementClientOptions options) {
  if (coord_address.empty()) return absl::InvalidArgumentError("coordinator address is empty");
  if (holder.empty() || holder.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("holder must be 1..256 characters, got ", holder.size()));
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(coord_address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + options.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat("ferry-coord at '", coord_address, "' did not answer within ",
                                               absl::FormatDuration(options.connect_timeout)));
  }
  std::unique_ptr<PlacementClient> client(new PlacementClient(std::make_unique<PlacementStub>(std::move(channel)),
                                                              std::move(holder), std::move(options)));
  client->StartBackground();
  return client;
}

PlacementClient::PlacementClient(std::unique_ptr<PlacementStub> stub, std::string holder,
                                 PlacementClientOptions options)
    : stub_(std::move(stub)),
      holder_(std::move(holder)),
      state_(std::make_unique<PlacementClientState>(std::move(options))) {}

absl::StatusOr<std::vector<uint64_t>> PlacementClient::SetResource(const std::string& name, double capacity,
                                                                   const ResourceSelector& selector) {
  pb::SetResourceRequest req;
  req.set_name(name);
  req.set_capacity(capacity);
  *req.mutable_selector() = ToProto(selector);
  pb::SetResourceReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kUnaryTimeout);
  if (absl::Status s = FromGrpc(stub_->stub->SetResource(&ctx, req, &reply)); !s.ok()) return s;
  std::vector<uint64_t> nodes(reply.nodes().begin(), reply.nodes().end());
  absl::MutexLock lock(&state_->mu);
  for (uint64_t n : nodes) {
    if (capacity == 0) {
      state_->resources.erase({name, n});
    } else {
      state_->resources[{name, n}] = capacity;
    }
  }
  return nodes;
}

absl::StatusOr<std::vector<NodeResources>> PlacementClient::ClusterResources() {
  pb::ClusterResourcesReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kUnaryTimeout);
  if (absl::Status s = FromGrpc(stub_->stub->ClusterResources(&ctx, {}, &reply)); !s.ok()) return s;
  std::vector<NodeResources> out;
  for (const pb::NodeResources& n : reply.nodes()) {
    NodeResources r{n.node_id(), n.name(), {n.labels().begin(), n.labels().end()}, {}};
    for (const auto& [name, a] : n.resources()) r.resources[name] = {a.capacity(), a.available()};
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<PlacementLease> PlacementClient::Acquire(const PlacementRequest& request) {
  absl::StatusOr<pb::AcquireRequest> req = ToProto(request, holder_);
  if (!req.ok()) return req.status();
  pb::AcquireReply reply;
  grpc::ClientContext ctx;
  // No client deadline for "until granted": the service caps the wait and answers then.
  if (request.timeout > absl::ZeroDuration()) SetDeadline(ctx, request.timeout + kAcquireSlack);
  if (absl::Status s = FromGrpc(stub_->stub->Acquire(&ctx, *req, &reply)); !s.ok()) return s;
  PlacementLease lease = LeaseFromProto(reply.lease());
  lease.waited = absl::Milliseconds(reply.waited_ms());
  // A grant from a new incarnation: leases held from before the restart are re-reported now.
  if (state_->Book(reply.lease())) Recover(kRecoverPatience).IgnoreError();
  return lease;
}

absl::StatusOr<std::vector<absl::StatusOr<PlacementLease>>> PlacementClient::AcquireBatch(
    const std::vector<PlacementRequest>& requests) {
  if (requests.empty() || requests.size() > kMaxBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("AcquireBatch takes 1..", kMaxBatch, " requests, got ", requests.size()));
  }
  pb::AcquireBatchRequest req;
  absl::Duration longest = absl::ZeroDuration();
  bool unbounded = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::StatusOr<pb::AcquireRequest> one = ToProto(requests[i], holder_);
    if (!one.ok()) return absl::Status(one.status().code(), absl::StrCat("request ", i, ": ", one.status().message()));
    *req.add_requests() = *std::move(one);
    longest = std::max(longest, requests[i].timeout);
    unbounded = unbounded || requests[i].timeout == absl::ZeroDuration();
  }
  pb::AcquireBatchReply reply;
  grpc::ClientContext ctx;
  if (!unbounded) SetDeadline(ctx, longest + kAcquireSlack);
  if (absl::Status s = FromGrpc(stub_->stub->AcquireBatch(&ctx, req, &reply)); !s.ok()) return s;
  if (reply.results_size() != req.requests_size()) {
    return absl::InternalError(absl::StrCat("AcquireBatch answered ", reply.results_size(), " of ",
                                            req.requests_size(), " requests"));
  }
  std::vector<absl::StatusOr<PlacementLease>> out;
  out.reserve(requests.size());
  for (const pb::AcquireOutcome& r : reply.results()) {
    if (r.code() != 0) {
      out.push_back(absl::Status(static_cast<absl::StatusCode>(r.code()), r.message()));
      continue;
    }
    PlacementLease lease = LeaseFromProto(r.reply().lease());
    lease.waited = absl::Milliseconds(r.reply().waited_ms());
    out.push_back(std::move(lease));
  }
  bool stale = false;
  for (const pb::AcquireOutcome& r : reply.results()) {
    if (r.code() == 0) stale = state_->Book(r.reply().lease()) || stale;
  }
  if (stale) Recover(kRecoverPatience).IgnoreError();
  return out;
}

absl::Status PlacementClient::Release(uint64_t lease_id) {
  absl::Status status = WithRecovery(lease_id, [&](uint64_t incarnation) {
    pb::ReleaseRequest req;
    req.set_lease_id(lease_id);
    req.set_holder(holder_);
    req.set_incarnation(incarnation);
    pb::ReleaseReply reply;
    grpc::ClientContext ctx;
    SetDeadline(ctx, kUnaryTimeout);
    return FromGrpc(stub_->stub->Release(&ctx, req, &reply));
  });
  if (absl::IsNotFound(status)) {
    state_->Lose(lease_id, std::string(status.message()));
  } else if (status.ok() || absl::IsPermissionDenied(status)) {
    absl::MutexLock lock(&state_->mu);
    state_->held.erase(lease_id);
  }
  return status;
}

absl::StatusOr<std::vector<absl::Status>> PlacementClient::ReleaseBatch(const std::vector<uint64_t>& lease_ids) {
  if (lease_ids.empty() || lease_ids.size() > kMaxBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("ReleaseBatch takes 1..", kMaxBatch, " lease ids, got ", lease_ids.size()));
  }
  // One incarnation per call: leases held under another one (granted before a restart this
  // client has not re-reported yet) are released one by one, through Release's recovery.
  pb::ReleaseBatchRequest req;
  req.set_holder(holder_);
  req.set_incarnation(state_->IncarnationOf(lease_ids[0]));
  std::vector<size_t> alone;
  std::vector<size_t> batched;
  for (size_t i = 0; i < lease_ids.size(); ++i) {
    const uint64_t inc = state_->IncarnationOf(lease_ids[i]);
    if (inc != req.incarnation() && inc != 0) {
      alone.push_back(i);
    } else {
      batched.push_back(i);
      req.add_lease_ids(lease_ids[i]);
    }
  }
  std::vector<absl::Status> out(lease_ids.size());
  for (size_t i : alone) out[i] = Release(lease_ids[i]);
  if (batched.empty()) return out;
  pb::ReleaseBatchReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kUnaryTimeout);
  if (absl::Status s = FromGrpc(stub_->stub->ReleaseBatch(&ctx, req, &reply)); !s.ok()) return s;
  if (reply.results_size() != req.lease_ids_size()) {
    return absl::InternalError(absl::StrCat("ReleaseBatch answered ", reply.results_size(), " of ",
                                            req.lease_ids_size(), " leases"));
  }
  for (int k = 0; k < reply.results_size(); ++k) {
    const uint64_t id = lease_ids[batched[k]];
    absl::Status s(static_cast<absl::StatusCode>(reply.results(k).code()), reply.results(k).message());
    if (absl::IsAborted(s)) {  // a restart since: re-report, then release this one alone
      s = Release(id);
    } else if (absl::IsNotFound(s)) {
      state_->Lose(id, std::string(s.message()));
    } else if (s.ok() || absl::IsPermissionDenied(s)) {
      absl::MutexLock lock(&state_->mu);
      state_->held.erase(id);
    }
    out[batched[k]] = std::move(s);
  }
  return out;
}

absl::StatusOr<absl::Time> PlacementClient::Renew(uint64_t lease_id) {
  pb::RenewReply reply;
  absl::Status status = WithRecovery(lease_id, [&](uint64_t incarnation) {
    pb::RenewRequest req;
    req.set_lease_id(lease_id);
    req.set_holder(holder_);
    req.set_incarnation(incarnation);
    reply.Clear();
    grpc::ClientContext ctx;
    SetDeadline(ctx, kUnaryTimeout);
    return FromGrpc(stub_->stub->Renew(&ctx, req, &reply));
  });
  if (absl::IsNotFound(status)) state_->Lose(lease_id, std::string(status.message()));
  if (!status.ok()) return status;
  absl::MutexLock lock(&state_->mu);
  auto it = state_->held.find(lease_id);
  if (it != state_->held.end()) it->second.set_expiry_unix_ms(reply.expiry_unix_ms());
  return absl::FromUnixMillis(reply.expiry_unix_ms());
}

absl::StatusOr<std::vector<PlacementLease>> PlacementClient::ListLeases(bool all) {
  pb::ListLeasesRequest req;
  if (!all) req.set_holder(holder_);
  pb::ListLeasesReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kUnaryTimeout);
  if (absl::Status s = FromGrpc(stub_->stub->ListLeases(&ctx, req, &reply)); !s.ok()) return s;
  std::vector<PlacementLease> out;
  for (const pb::Lease& l : reply.leases()) out.push_back(LeaseFromProto(l));
  return out;
}

std::vector<PlacementLease> PlacementClient::HeldLeases() const {
  absl::MutexLock lock(&state_->mu);
  std::vector<PlacementLease> out;
  for (const auto& [id, lease] : state_->held) out.push_back(LeaseFromProto(lease));
  return out;
}

uint64_t PlacementClient::incarnation() const {
  absl::MutexLock lock(&state_->mu);
  return state_->incarnation;
}

}  // namespace ferry
