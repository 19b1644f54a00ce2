// PlacementService after a coordinator restart: the rebuild window, ReportLeases, and the
// holders file (see placement_service.h and docs/protocol.md "Coordinator restart" under
// "Placement service").
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/placement/placement_service.h"
#include "control/placement/placement_wire.h"
#include "proto/status_bridge.h"
#include "spdlog/spdlog.h"

namespace ferry::control::placement {

void PlacementService::StartRebuildLocked(absl::Time now) {
  bool listed_known = false;
  if (holders_file_.enabled()) {
    absl::StatusOr<std::set<std::string>> listed = holders_file_.Read();
    if (listed.ok()) {
      listed_known = true;
      rebuild_awaits_ = *listed;
      holders_written_ = *std::move(listed);
    } else {
      spdlog::warn("placement: {}; the rebuild window runs its full length", std::string(listed.status().message()));
    }
  }
  awaits_known_ = listed_known;
  if (options_.rebuild <= absl::ZeroDuration() || (listed_known && rebuild_awaits_.empty())) {
    if (listed_known && !rebuild_awaits_.empty()) {
      spdlog::warn("placement: no rebuild window (--placement-rebuild-ms 0): the leases of {} holder(s) of the "
                   "previous coordinator are lost",
                   rebuild_awaits_.size());
    }
    rebuild_awaits_.clear();
    WriteHoldersLocked({}, now);
    return;
  }
  absl::Status begun = manager_.BeginRebuild(now + options_.rebuild, now);
  if (!begun.ok()) {
    spdlog::error("placement: rebuild window not opened: {}", std::string(begun.message()));
    return;
  }
  spdlog::info("placement: incarnation {}: rebuild window open for {} ({}); nothing is granted until it closes",
               incarnation_, absl::FormatDuration(options_.rebuild),
               listed_known ? absl::StrCat("waiting for ", rebuild_awaits_.size(), " holder(s) to re-report")
                            : std::string("holders unknown"));
}

void PlacementService::EndRebuildLocked(absl::Time now, const std::string& why, Answers& answers) {
  if (!manager_.rebuilding()) return;
  PlacementEvents events = manager_.EndRebuild(now);
  spdlog::info("placement: rebuild window closed ({}): {} lease(s) restored{}", why, restored_,
               awaits_known_ && !rebuild_awaits_.empty()
                   ? absl::StrCat(", ", rebuild_awaits_.size(), " holder(s) did not report")
                   : std::string());
  rebuild_awaits_.clear();
  HandleLocked(std::move(events), answers);
  std::set<std::string> holding;
  for (const auto& [holder, n] : held_) holding.insert(holder);
  WriteHoldersLocked(std::move(holding), now);
  WakeTimerLocked();
}

namespace {

// True if `lease` holds exactly what `report` says (a second report of a restored lease).
bool SameHolding(const Lease& lease, const LeaseReport& report, const ResourceTable& table) {
  if (lease.holder != report.holder || lease.bundles.size() != report.bundles.size()) return false;
  for (size_t b = 0; b < lease.bundles.size(); ++b) {
    if (lease.bundles[b].node != report.bundles[b].first) return false;
    ResourceMap held;
    for (const Demand& d : lease.bundles[b].demands) held[table.Name(d.resource)] = d.amount;
    if (held != report.bundles[b].second) return false;
  }
  return true;
}

}  // namespace

void PlacementService::ReportOneLocked(const LeaseReport& report, absl::Time now, pb::LeaseReportResult* out) {
  out->set_lease_id(report.id);
  if (const Lease* held = manager_.leases().Find(report.id);
      held != nullptr && SameHolding(*held, report, manager_.table())) {
    out->set_outcome(pb::REPORT_RESTORED);  // reported again: already held
    out->set_expiry_unix_ms(absl::ToUnixMillis(held->expiry));
    return;
  }
  absl::Status restored = manager_.Restore(report, now);
  if (restored.ok()) {
    ++restored_;
    HeldLocked(report.holder);
    out->set_outcome(pb::REPORT_RESTORED);
    out->set_expiry_unix_ms(absl::ToUnixMillis(manager_.leases().Find(report.id)->expiry));
    WakeTimerLocked();
    return;
  }
  // A node or resource not back yet may still come back inside the window.
  out->set_outcome(absl::IsNotFound(restored) && manager_.rebuilding() ? pb::REPORT_NOT_YET : pb::REPORT_REFUSED);
  out->set_reason(std::string(restored.message()));
}

grpc::ServerUnaryReactor* PlacementService::ReportLeases(grpc::CallbackServerContext* ctx,
                                                         const pb::ReportLeasesRequest* req,
                                                         pb::ReportLeasesReply* reply) {
  if (req->holder().empty() || req->holder().size() > kMaxHolderLength) {
    return Answer(ctx, absl::InvalidArgumentError(absl::StrCat("holder must be 1..", kMaxHolderLength,
                                                               " characters")));
  }
  if (req->leases_size() > kMaxReport) {
    return Answer(ctx, absl::InvalidArgumentError(absl::StrCat("ReportLeases takes at most ", kMaxReport,
                                                               " leases, got ", req->leases_size())));
  }
  const WireLimits limits{options_.max_wait, options_.default_ttl, options_.max_ttl};
  std::vector<LeaseReport> reports;
  for (const pb::Lease& l : req->leases()) {
    absl::StatusOr<LeaseReport> report = ReportFromProto(l, req->holder(), limits);
    if (!report.ok()) return Answer(ctx, report.status());
    reports.push_back(*std::move(report));
  }
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Answer(ctx, absl::UnavailableError("placement service shutting down"));
    const absl::Time now = absl::Now();
    bool all_in = true;
    for (const LeaseReport& r : reports) {
      pb::LeaseReportResult* out = reply->add_results();
      ReportOneLocked(r, now, out);
      all_in = all_in && out->outcome() != pb::REPORT_NOT_YET;
    }
    if (manager_.rebuilding() && all_in) {
      rebuild_awaits_.erase(req->holder());
      if (awaits_known_ && rebuild_awaits_.empty()) EndRebuildLocked(now, "every holder re-reported", answers);
    }
    reply->set_incarnation(incarnation_);
    reply->set_rebuilding(manager_.rebuilding());
    if (manager_.rebuilding()) reply->set_rebuild_ends_unix_ms(absl::ToUnixMillis(manager_.rebuild_until()));
  }
  Finish(answers);
  return Answer(ctx, absl::OkStatus());
}

// ---- holders file ---------------------------------------------------------------------------

void PlacementService::HeldLocked(const std::string& holder) {
  if (held_[holder]++ != 0 || !holders_file_.enabled() || holders_written_.contains(holder)) return;
  // A new holder is on disk before its grant is answered: a restart cannot forget to wait for it.
  std::set<std::string> next = holders_written_;
  next.insert(holder);
  WriteHoldersLocked(std::move(next), absl::Now());
}

void PlacementService::UnheldLocked(const std::string& holder) {
  auto it = held_.find(holder);
  if (it == held_.end()) return;
  if (--it->second == 0) held_.erase(it);
}

void PlacementService::MaybeTrimHoldersLocked(absl::Time now) {
  // held_'s holders are all written; more written means some hold nothing now. Not while
  // rebuilding: holders that have not reported yet hold nothing here but must stay listed.
  if (!holders_file_.enabled() || manager_.rebuilding() || holders_written_.size() <= held_.size() ||
      now - holders_written_at_ < absl::Seconds(1)) {
    return;
  }
  std::set<std::string> holding;
  for (const auto& [holder, n] : held_) holding.insert(holder);
  WriteHoldersLocked(std::move(holding), now);
}

void PlacementService::WriteHoldersLocked(std::set<std::string> holders, absl::Time now) {
  if (!holders_file_.enabled()) return;
  if (absl::Status s = holders_file_.Write(holders); !s.ok()) {
    // Retried at the next change; warned about at most every 10 s (a full disk must not flood
    // the log at the grant rate).
    if (now - holders_warned_at_ >= absl::Seconds(10)) {
      spdlog::warn("placement: {} (a restart may close its rebuild window before every holder reported)",
                   std::string(s.message()));
      holders_warned_at_ = now;
    }
    return;
  }
  holders_written_ = std::move(holders);
  holders_written_at_ = now;
}

}  // namespace ferry::control::placement
