// What ferryd needs from the coordinator, behind an interface: the session stream (Hello,
// heartbeats, DropDone out; Welcome, Membership and instructions in) and the unary object
// calls. GrpcCoordinatorClient (grpc_coordinator_client.h) is the real one; unit tests drive
// Node with a fake (tests/unit/sidecar/fake_coordinator_client.h).
//
// Errors are absl::Status with the coordinator's own code and message (gRPC codes are
// absl's), so callers test codes (NOT_FOUND, UNAVAILABLE, ...) without knowing about gRPC.
// Each call has a deadline chosen by the implementation from the request (see the gRPC
// client); AcquireSource waits up to its request's timeout_ms.
//
// Threading: every method may be called from any thread at once and blocks for at most its
// deadline. Shutdown cancels calls in progress and the open session.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

// One Session stream. Read and Write may run at the same time on two threads (one reader,
// one writer at a time: the caller serializes its writes). Cancel may be called from any
// thread at any time, also after the stream ended.
class CoordinatorStream {
 public:
  virtual ~CoordinatorStream() = default;
  // False once the stream is broken or cancelled (the message may not have been sent).
  virtual bool Write(const proto::NodeMessage& msg) = 0;
  // Blocks for the next message; false when the stream has ended (then call Finish).
  virtual bool Read(proto::CoordMessage* msg) = 0;
  // The stream's final status, once Read has returned false. Call once.
  virtual absl::Status Finish() = 0;
  // Ends the stream: a blocked Read returns false soon.
  virtual void Cancel() = 0;
};

class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;

  // The coordinator's address, for messages ("coordinator HOST:PORT refused ...").
  virtual const std::string& target() const = 0;

  // Opens a Session stream (never null; a stream that cannot connect fails its first Read).
  virtual std::unique_ptr<CoordinatorStream> OpenSession() = 0;

  [[nodiscard]] virtual absl::Status Locate(const proto::LocateRequest& req, proto::LocateReply* reply) = 0;
  [[nodiscard]] virtual absl::Status Publish(const proto::PublishRequest& req) = 0;
  [[nodiscard]] virtual absl::Status Unpublish(const proto::UnpublishRequest& req) = 0;
  // Waits up to req.timeout_ms for a sender; CANCELLED after Shutdown.
  [[nodiscard]] virtual absl::Status AcquireSource(const proto::AcquireSourceRequest& req,
                                                   proto::AcquireSourceReply* reply) = 0;
  [[nodiscard]] virtual absl::Status ReportTransfer(const proto::ReportTransferRequest& req) = 0;
  [[nodiscard]] virtual absl::Status Delete(const proto::DeleteRequest& req) = 0;
  // Batches: the call's status is the batch's (refused as a whole); the reply lists the
  // entries that failed.
  [[nodiscard]] virtual absl::Status PublishBatch(const proto::PublishBatchRequest& req,
                                                  proto::PublishBatchReply* reply) = 0;
  [[nodiscard]] virtual absl::Status DeleteBatch(const proto::DeleteBatchRequest& req,
                                                 proto::DeleteBatchReply* reply) = 0;
  [[nodiscard]] virtual absl::Status Exists(const proto::ExistsRequest& req, proto::ExistsReply* reply) = 0;
  [[nodiscard]] virtual absl::Status List(const proto::ListRequest& req, proto::ListReply* reply) = 0;
  [[nodiscard]] virtual absl::Status ClusterStatus(proto::ClusterStatusReply* reply) = 0;
  // Waits up to req.timeout_ms for the broadcast to finish.
  [[nodiscard]] virtual absl::Status Broadcast(const proto::BroadcastRequest& req, proto::BroadcastReply* reply) = 0;
  // Waits up to req.timeout_ms for the batch to finish.
  [[nodiscard]] virtual absl::Status BroadcastBatch(const proto::BroadcastBatchRequest& req,
                                                    proto::BroadcastBatchReply* reply) = 0;
  // Reduce (all = false) or AllReduce; waits up to the request's timeout (plus a margin).
  [[nodiscard]] virtual absl::Status Reduce(const proto::ReduceRequest& req, bool all, proto::ReduceReply* reply) {
    return absl::UnimplementedError("this coordinator client does not reduce");
  }
  // The Group RPC (static groups); a collective waits up to its timeout (plus a margin).
  [[nodiscard]] virtual absl::Status Group(const proto::GroupRequest& req, proto::GroupReply* reply) {
    return absl::UnimplementedError("this coordinator client has no groups");
  }

  // Cancels the calls in progress that may wait long (AcquireSource, Broadcast, BroadcastBatch); later ones of
  // those fail CANCELLED at once. Idempotent; does not block. Session streams are cancelled
  // by their owner (CoordinatorStream::Cancel).
  virtual void Shutdown() = 0;
};

}  // namespace ferry::dataplane
