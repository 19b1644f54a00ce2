// This node's ReportTransfer calls: builds each report and queues it (ReportQueue), so that it
// reaches the coordinator in order, in the background. Flush before any other coordinator
// call about objects, so that the coordinator sees this node's reports and requests in the
// order the node made them (a SENDER_FAILED precedes the re-planning AcquireSource).
//
// Threading: thread-safe. Report never blocks; Flush blocks up to 10 s.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/sidecar/coordinator_client.h"
#include "dataplane/sidecar/report_queue.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

struct TransferReport {
  std::string ns, key;
  uint64_t sender = 0;   // 0: none (inline, or not known)
  proto::ReportTransferRequest::Outcome outcome = proto::ReportTransferRequest::COMPLETED;
  std::string detail;
  uint64_t bytes = 0;
  double seconds = 0;
  uint64_t incarnation = 0;   // of the copy the report is about (0: unknown)
  uint64_t op_id = 0;         // the instruction's operation (PullInstruction.broadcast_id); 0 for a Get
};

class TransferReporter {
 public:
  // `client` must outlive this (Stop before destroying the client).
  TransferReporter(uint64_t node_id, CoordinatorClient* client);

  void Report(const TransferReport& r);
  // The request Report would queue, for a caller that sends it another way (on the session).
  proto::ReportTransferRequest Build(const TransferReport& r) const;
  // Queues an already built request (one that could not go the other way).
  void Queue(proto::ReportTransferRequest req);
  // Waits (up to 10 s) until every report queued before this call has been sent.
  void Flush();
  // Sends what is queued for a little longer, then stops (ReportQueue::Stop).
  void Stop();

 private:
  const uint64_t node_id_;
  ReportQueue queue_;
};

}  // namespace ferry::dataplane
