// PlacementClient's upkeep: its books of held leases, re-reporting them after a coordinator
// restart (ReportLeases, Recover), the optional background renewal and WatchLeases stream, and
// lost leases (on_loss, WaitLoss).
#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/status_bridge.h"
#include "sdk/placement_internal.h"

namespace ferry {
namespace {

constexpr absl::Duration kReportTimeout = absl::Seconds(30);
constexpr absl::Duration kRetryPause = absl::Milliseconds(200);
constexpr absl::Duration kRecoverPatience = absl::Seconds(30);

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// Ephemeral resources live in the coordinator only: sets again those it lacks on nodes that are
// back, so that leases holding them can be restored. A refused set is not an error here: the
// leases holding it come back REFUSED.
absl::Status SetAgain(PlacementClient& client, PlacementStub& stub,
                      const std::map<std::pair<std::string, uint64_t>, double>& resources) {
  if (resources.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<NodeResources>> nodes = client.ClusterResources();
  if (!nodes.ok()) return nodes.status();
  std::map<uint64_t, const NodeResources*> by_id;
  for (const NodeResources& n : *nodes) by_id[n.node_id] = &n;
  for (const auto& [key, capacity] : resources) {
    auto it = by_id.find(key.second);
    if (it == by_id.end() || it->second->resources.contains(key.first)) continue;
    pb::SetResourceRequest set;
    set.set_name(key.first);
    set.set_capacity(capacity);
    set.mutable_selector()->set_node_id(key.second);
    pb::SetResourceReply ignored;
    grpc::ClientContext ctx;
    SetDeadline(ctx, kReportTimeout);
    stub.stub->SetResource(&ctx, set, &ignored);
  }
  return absl::OkStatus();
}

}  // namespace

bool PlacementClientState::Book(const pb::Lease& lease) {
  absl::MutexLock lock(&mu);
  const uint64_t before = incarnation;
  incarnation = lease.incarnation();
  held[lease.lease_id()] = lease;
  if (before == 0 || before == lease.incarnation()) return false;
  return std::any_of(held.begin(), held.end(),
                     [&](const auto& kv) { return kv.second.incarnation() != lease.incarnation(); });
}

void PlacementClientState::Lose(uint64_t lease_id, std::string reason, bool pushed) {
  LostPlacementLease lost{lease_id, std::move(reason)};
  {
    absl::MutexLock lock(&mu);
    if (held.erase(lease_id) == 0 && !pushed) return;  // told already, or not ours
    losses.push_back(lost);
    if (losses.size() > kMaxLosses) losses.pop_front();
  }
  if (options.on_loss) options.on_loss(lost);
}

uint64_t PlacementClientState::IncarnationOf(uint64_t lease_id) const {
  absl::MutexLock lock(&mu);
  auto it = held.find(lease_id);
  return it == held.end() ? 0 : it->second.incarnation();
}

PlacementClient::~PlacementClient() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
    if (state_->watch_ctx != nullptr) state_->watch_ctx->TryCancel();
  }
  if (state_->renewer.joinable()) state_->renewer.join();
  if (state_->watcher.joinable()) state_->watcher.join();
}

void PlacementClient::StartBackground() {
  if (state_->options.auto_renew) state_->renewer = std::thread([this] { RenewLoop(); });
  if (state_->options.watch) state_->watcher = std::thread([this] { WatchLoop(); });
}

absl::Status PlacementClient::WithRecovery(uint64_t lease_id,
                                           const std::function<absl::Status(uint64_t incarnation)>& call) {
  absl::Status status = call(state_->IncarnationOf(lease_id));
  if (!absl::IsAborted(status)) return status;
  if (absl::Status r = Recover(kRecoverPatience); !r.ok()) {
    return absl::Status(r.code(), absl::StrCat("re-reporting leases after a coordinator restart: ", r.message()));
  }
  const uint64_t incarnation = state_->IncarnationOf(lease_id);
  if (incarnation == 0) {
    return absl::NotFoundError(absl::StrCat("lease ", lease_id,
                                            " was not restored after a coordinator restart (WaitLoss says why)"));
  }
  return call(incarnation);
}

absl::Status PlacementClient::Recover(absl::Duration patience) {
  absl::MutexLock one(&state_->recover_mu);
  const absl::Time give_up = absl::Now() + patience;
  for (;;) {
    {
      absl::MutexLock lock(&state_->mu);
      if (state_->stopping) return absl::CancelledError("placement client closing");
    }
    absl::StatusOr<PlacementReport> report = ReportLeases();
    if (report.ok() && report->not_yet.empty()) return absl::OkStatus();
    if (!report.ok() && !absl::IsUnavailable(report.status()) && !absl::IsDeadlineExceeded(report.status())) {
      return report.status();
    }
    if (absl::Now() >= give_up) {
      return report.ok() ? absl::DeadlineExceededError(absl::StrCat(
                               report->not_yet.size(), " lease(s) still name nodes or resources that are not back after ",
                               absl::FormatDuration(patience)))
                         : report.status();
    }
    absl::MutexLock lock(&state_->mu);
    state_->mu.AwaitWithTimeout(absl::Condition(&state_->stopping), kRetryPause);
  }
}

absl::StatusOr<PlacementReport> PlacementClient::ReportLeases() {
  pb::ReportLeasesRequest req;
  req.set_holder(holder_);
  std::map<std::pair<std::string, uint64_t>, double> resources;
  {
    absl::MutexLock lock(&state_->mu);
    for (const auto& [id, lease] : state_->held) *req.add_leases() = lease;
    resources = state_->resources;
  }
  if (absl::Status s = SetAgain(*this, *stub_, resources); !s.ok()) return s;
  pb::ReportLeasesReply reply;
  grpc::ClientContext ctx;
  SetDeadline(ctx, kReportTimeout);
  if (absl::Status s = FromGrpc(stub_->stub->ReportLeases(&ctx, req, &reply)); !s.ok()) return s;
  PlacementReport out;
  out.incarnation = reply.incarnation();
  out.rebuilding = reply.rebuilding();
  {
    absl::MutexLock lock(&state_->mu);
    state_->incarnation = reply.incarnation();
    for (const pb::LeaseReportResult& r : reply.results()) {
      auto it = state_->held.find(r.lease_id());
      if (r.outcome() == pb::REPORT_RESTORED) {
        out.restored.push_back(r.lease_id());
        if (it == state_->held.end()) continue;
        it->second.set_incarnation(reply.incarnation());
        it->second.set_expiry_unix_ms(r.expiry_unix_ms());
      } else if (r.outcome() == pb::REPORT_NOT_YET) {
        out.not_yet.push_back(r.lease_id());
      } else {
        out.refused.push_back({r.lease_id(), absl::StrCat("lease ", r.lease_id(), " of '", holder_,
                                                          "' was not restored after a coordinator restart: ",
                                                          r.reason())});
      }
    }
  }
  for (const LostPlacementLease& lost : out.refused) state_->Lose(lost.lease_id, lost.reason);
  return out;
}

absl::StatusOr<LostPlacementLease> PlacementClient::WaitLoss(absl::Duration timeout) {
  absl::MutexLock lock(&state_->mu);
  auto any = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return !state_->losses.empty(); };
  if (!state_->mu.AwaitWithTimeout(absl::Condition(&any), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("no lease of '", holder_, "' was lost within ",
                                                    absl::FormatDuration(timeout)));
  }
  LostPlacementLease lost = std::move(state_->losses.front());
  state_->losses.pop_front();
  return lost;
}

void PlacementClient::RenewLoop() {
  for (;;) {
    std::vector<uint64_t> ids;
    absl::Duration period = absl::Seconds(1);
    {
      absl::MutexLock lock(&state_->mu);
      for (const auto& [id, lease] : state_->held) {
        ids.push_back(id);
        period = std::min(period, absl::Milliseconds(lease.ttl_ms()) / 3);
      }
      period = std::max(period, absl::Milliseconds(20));
      if (state_->mu.AwaitWithTimeout(absl::Condition(&state_->stopping), period)) return;
    }
    for (uint64_t id : ids) {
      if (state_->IncarnationOf(id) == 0) continue;  // released or lost meanwhile
      Renew(id).IgnoreError();                        // losses are booked by Renew
    }
  }
}

void PlacementClient::WatchLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&state_->mu);
      if (state_->stopping) return;
      state_->watch_ctx = &ctx;
    }
    pb::WatchLeasesRequest req;
    req.set_holder(holder_);
    std::unique_ptr<grpc::ClientReader<pb::LeaseEvent>> reader = stub_->stub->WatchLeases(&ctx, req);
    pb::LeaseEvent event;
    bool first = true;
    while (reader->Read(&event)) {
      if (first) {
        first = false;
        backoff = absl::Milliseconds(100);
        uint64_t before = 0;
        {
          absl::MutexLock lock(&state_->mu);
          before = state_->incarnation;
          if (before == 0) state_->incarnation = event.incarnation();
        }
        if (before != 0 && before != event.incarnation()) Recover(kRecoverPatience).IgnoreError();
        continue;
      }
      if (event.lease_id() != 0) state_->Lose(event.lease_id(), event.reason(), /*pushed=*/true);
    }
    reader->Finish().IgnoreError();
    absl::MutexLock lock(&state_->mu);
    state_->watch_ctx = nullptr;
    if (state_->mu.AwaitWithTimeout(absl::Condition(&state_->stopping), backoff)) return;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace ferry
