// PlacementClient: the SDK's side of proto/placement.proto (a thin synchronous stub over one
// gRPC channel to ferry-coord) and the conversions between the public types and the messages.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ferry/placement.h"
#include "proto/placement.grpc.pb.h"
#include "proto/status_bridge.h"

namespace ferry {

namespace pb = ::ferry::proto::placement;

class PlacementStub {
 public:
  explicit PlacementStub(std::shared_ptr<grpc::Channel> channel) : stub(pb::Placement::NewStub(channel)) {}
  std::unique_ptr<pb::Placement::Stub> stub;
};

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

PlacementLease FromProto(const pb::Lease& l) {
  PlacementLease out;
  out.id = l.lease_id();
  out.holder = l.holder();
  out.alternative = l.alternative();
  out.ttl = absl::Milliseconds(l.ttl_ms());
  out.expiry = absl::FromUnixMillis(l.expiry_unix_ms());
  for (const pb::LeasedBundle& b : l.bundles()) {
    out.bundles.push_back(LeasedBundle{b.node_id(), b.node_name(), ResourceAmounts(b.amounts().begin(),
                                                                                   b.amounts().end())});
  }
  return out;
}

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
  if (coord_address.empty()) return absl::InvalidArgumentError("coordinator address is empty");
  if (holder.empty() || holder.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("holder must be 1..256 characters, got ", holder.size()));
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(coord_address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + connect_timeout))) {
    return absl::UnavailableError(absl::StrCat("ferry-coord at '", coord_address, "' did not answer within ",
                                               absl::FormatDuration(connect_timeout)));
  }
  return std::unique_ptr<PlacementClient>(
      new PlacementClient(std::make_unique<PlacementStub>(std::move(channel)), std::move(holder)));
}

PlacementClient::PlacementClient(std::unique_ptr<PlacementStub> stub, std::string holder)
    : stub_(std::move(stub)), holder_(std::move(holder)) {}
PlacementClient::~PlacementClient() = default;

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
  return std::vector<uint64_t>(reply.nodes().begin(), reply.nodes().end());
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
  PlacementLease lease = FromProto(reply.lease());
  lease.waited = absl::Milliseconds(reply.waited_ms());
  return lease;
}

absl::Status PlacementClient::Release(uint64_t lease_id) {
  pb::ReleaseRequest req;
  req.set_lease_id(lease_id);
  req.set_holder(holder_);
  pb::ReleaseReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kUnaryTimeout);
  return FromGrpc(stub_->stub->Release(&ctx, req, &reply));
}

absl::StatusOr<absl::Time> PlacementClient::Renew(uint64_t lease_id) {
  pb::RenewRequest req;
  req.set_lease_id(lease_id);
  req.set_holder(holder_);
  pb::RenewReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kUnaryTimeout);
  if (absl::Status s = FromGrpc(stub_->stub->Renew(&ctx, req, &reply)); !s.ok()) return s;
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
  for (const pb::Lease& l : reply.leases()) out.push_back(FromProto(l));
  return out;
}

}  // namespace ferry
