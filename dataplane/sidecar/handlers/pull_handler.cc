#include "dataplane/sidecar/handlers/pull_handler.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

PullHandler::PullHandler(ObjectFetcher* fetcher, ObjectStore* store, TransferReporter* reports, size_t max_pulls)
    : fetcher_(fetcher), store_(store), reports_(reports), pulls_("broadcast pulls", max_pulls) {}

PullHandler::~PullHandler() { Shutdown(); }

void PullHandler::Shutdown() { pulls_.Shutdown(); }

TransferReport PullHandler::ReportOf(const proto::PullInstruction& pull, uint64_t sender,
                                     proto::ReportTransferRequest::Outcome outcome, const std::string& detail,
                                     uint64_t incarnation) {
  TransferReport r;
  r.ns = pull.ref().ns();
  r.key = pull.ref().key();
  r.sender = sender;
  r.outcome = outcome;
  r.detail = detail;
  r.incarnation = incarnation;
  r.op_id = pull.broadcast_id();
  return r;
}

void PullHandler::Report(const proto::PullInstruction& pull, uint64_t sender,
                         proto::ReportTransferRequest::Outcome outcome, const std::string& detail,
                         uint64_t incarnation) {
  reports_->Report(ReportOf(pull, sender, outcome, detail, incarnation));
}

void PullHandler::ReportByRpc(proto::ReportTransferRequest report) { reports_->Queue(std::move(report)); }

std::optional<proto::ReportTransferRequest> PullHandler::Handle(const proto::PullInstruction& pull) {
  if (pull.is_inline()) return HandleInline(pull);
  absl::Status submitted = pulls_.Submit([this, pull] { RunPull(pull); });
  if (!submitted.ok()) {
    spdlog::warn("dropping pull instruction for {}: {}", PrintableName(pull.ref().ns(), pull.ref().key()),
                 std::string(submitted.message()));
    // The coordinator may have attached us already; say we will not pull, so nobody waits
    // on a copy that never grows.
    Report(pull, 0, proto::ReportTransferRequest::ABORTED,
           absl::StrCat("this node refused the pull: ", submitted.message()), 0);
  }
  return std::nullopt;
}

// A small object arrives with the instruction: store it right here, no pull.
proto::ReportTransferRequest PullHandler::HandleInline(const proto::PullInstruction& pull) {
  const std::string& ns = pull.ref().ns();
  const std::string& key = pull.ref().key();
  absl::Status s = ValidateObjectName(ns, key);
  if (s.ok() && !store_->Contains(ns, key)) s = fetcher_->StoreInline(ns, key, pull.meta(), pull.inline_data());
  // Reports queued before this one reach the coordinator first (usually there are none, and
  // this returns at once).
  reports_->Flush();
  if (s.ok() || store_->Contains(ns, key)) {
    return reports_->Build(ReportOf(pull, 0, proto::ReportTransferRequest::COMPLETED, "", pull.meta().incarnation()));
  }
  return reports_->Build(ReportOf(pull, 0, proto::ReportTransferRequest::ABORTED, std::string(s.message()), 0));
}

void PullHandler::RunPull(const proto::PullInstruction& pull) {
  const absl::Time deadline = absl::FromUnixMillis(pull.deadline_unix_ms());
  bool abort_reported = false;
  FetchOrigin origin{pull.broadcast_id(), pull.has_source() ? &pull.source() : nullptr};
  absl::StatusOr<GetResult> r =
      fetcher_->Get(pull.ref().ns(), pull.ref().key(), kInternalSession, deadline, origin, &abort_reported);
  if (r.ok()) {
    // The coordinator attached us, but the copy was here already (or another Get pulled
    // it): say so, which also frees the sender slot it reserved for us.
    if (origin.planned != nullptr && !r->pulled) {
      Report(pull, origin.planned->sender(), proto::ReportTransferRequest::COMPLETED, "",
             origin.planned->meta().incarnation());
    }
    store_->Unpin(r->pin);
    return;
  }
  spdlog::warn("broadcast pull of {} failed: {}", PrintableName(pull.ref().ns(), pull.ref().key()),
               std::string(r.status().message()));
  // The broadcast waits for every target's outcome: report the failure unless the pull did.
  if (!abort_reported) {
    Report(pull, 0, proto::ReportTransferRequest::ABORTED, std::string(r.status().message()), 0);
  }
}

}  // namespace ferry::dataplane
