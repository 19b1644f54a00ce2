#include "dataplane/sidecar/transfer_reporter.h"

#include <utility>

#include "absl/time/clock.h"
#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {
namespace {
constexpr absl::Duration kFlushTimeout = absl::Seconds(10);
}  // namespace

TransferReporter::TransferReporter(uint64_t node_id, CoordinatorClient* client)
    : node_id_(node_id), queue_([client](const proto::ReportTransferRequest& req) {
        if (absl::Status s = client->ReportTransfer(req); !s.ok()) {
          spdlog::warn("reporting transfer of {}: {}", PrintableName(req.ref().ns(), req.ref().key()),
                       std::string(s.message()));
        }
      }) {}

void TransferReporter::Report(const TransferReport& r) { Queue(Build(r)); }

void TransferReporter::Queue(proto::ReportTransferRequest req) { queue_.Push(std::move(req)); }

proto::ReportTransferRequest TransferReporter::Build(const TransferReport& r) const {
  proto::ReportTransferRequest req;
  req.set_node_id(node_id_);
  req.mutable_ref()->set_ns(r.ns);
  req.mutable_ref()->set_key(r.key);
  req.set_sender(r.sender);
  req.set_outcome(r.outcome);
  req.set_detail(r.detail);
  req.set_bytes(r.bytes);
  req.set_seconds(r.seconds);
  req.set_incarnation(r.incarnation);
  req.set_op_id(r.op_id);
  return req;
}

void TransferReporter::Flush() {
  if (!queue_.Flush(absl::Now() + kFlushTimeout)) {
    spdlog::warn("transfer reports still queued after {}; going on", absl::FormatDuration(kFlushTimeout));
  }
}

void TransferReporter::Stop() { queue_.Stop(); }

}  // namespace ferry::dataplane
