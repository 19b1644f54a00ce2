// A PullInstruction (an explicit broadcast's target): an inline object is stored at once; a
// large one is pulled on the broadcast-pull executor (at most max_pulls at once; more are
// refused and reported ABORTED). Every outcome is reported to the coordinator with
// op_id = the instruction's broadcast_id.
//
// Threading: Handle is called from the coordinator session thread and never blocks on a
// pull. Shutdown (after ObjectFetcher::Stop, so that running pulls end) joins the executor's
// threads.
#pragma once

#include <cstddef>
#include <optional>

#include "common/executor.h"
#include "dataplane/sidecar/object_fetcher.h"
#include "dataplane/sidecar/transfer_reporter.h"
#include "dataplane/store/object_store.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

class PullHandler {
 public:
  // All must outlive this.
  PullHandler(ObjectFetcher* fetcher, ObjectStore* store, TransferReporter* reports, size_t max_pulls);
  ~PullHandler();   // Shutdown()

  // Carries out `pull`. An inline one is stored right here and its report returned, for the
  // caller to send on the session stream at once (the reports queued before it are sent
  // first, so the coordinator still sees this node's reports in order); a pull of a larger
  // object runs on a pull thread and reports through the queue (nullopt).
  [[nodiscard]] std::optional<proto::ReportTransferRequest> Handle(const proto::PullInstruction& pull);
  // Queues a report Handle returned that could not be sent on the stream.
  void ReportByRpc(proto::ReportTransferRequest report);
  // Refuses new pulls and joins the running ones. Blocks until they end.
  void Shutdown();

  size_t running() const { return pulls_.running(); }

 private:
  proto::ReportTransferRequest HandleInline(const proto::PullInstruction& pull);
  void RunPull(const proto::PullInstruction& pull);
  void Report(const proto::PullInstruction& pull, uint64_t sender, proto::ReportTransferRequest::Outcome outcome,
              const std::string& detail, uint64_t incarnation);
  static TransferReport ReportOf(const proto::PullInstruction& pull, uint64_t sender,
                                 proto::ReportTransferRequest::Outcome outcome, const std::string& detail,
                                 uint64_t incarnation);

  ObjectFetcher* const fetcher_;
  ObjectStore* const store_;
  TransferReporter* const reports_;
  Executor pulls_;   // owns every broadcast-pull thread; joined by Shutdown
};

}  // namespace ferry::dataplane
