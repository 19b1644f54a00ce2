// One ferryd's Session stream on gRPC's callback API: no thread of its own. The reactor
// reads NodeMessages one at a time and hands them to its SessionHost; it writes what the
// host queued (Send) one message at a time, the next one starting when the last is done.
// Nobody else touches the stream. A slow reader delays only its own queue; a queue past its
// limit disconnects the node (the host is told why, and declares the node dead).
//
// Threading: gRPC's callback threads run the On* reactions. Send, Flush and Cancel may be
// called from any thread; they never call the host. The host must not hold a lock that its
// callbacks take while it calls Flush or Cancel (gRPC may run reactions inline), so it queues
// under its lock (Send) and kicks the writer after unlocking (Flush).
// Lifetime: the session owns itself (a shared_ptr released in OnDone); the host may keep
// shared_ptrs and call Send/Flush/Cancel after the stream ended (they do nothing then).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "control/cluster/session_queue.h"
#include "proto/coordinator.pb.h"

namespace ferry::control {

class NodeSession;

// What a session reports to the coordinator. Called without any session lock held, from
// gRPC's callback threads, one call at a time per session.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // The session's first message, a Hello. OK: accepted (the host has queued Welcome and a
  // membership snapshot and flushed them); otherwise the status the session ends with.
  virtual grpc::Status OnHello(const std::shared_ptr<NodeSession>& session, const proto::Hello& hello) = 0;
  // A later message. False ends the session (the node is no longer the live holder of its id).
  virtual bool OnNodeMessage(NodeSession* session, const proto::NodeMessage& msg) = 0;
  // The stream ended (`why` says how); called once, only for sessions whose Hello was accepted.
  virtual void OnSessionEnd(NodeSession* session, const std::string& why) = 0;
};

class NodeSession final : public grpc::ServerBidiReactor<proto::NodeMessage, proto::CoordMessage> {
 public:
  // Starts reading. The returned reactor is gRPC's until OnDone.
  static NodeSession* Start(grpc::CallbackServerContext* ctx, SessionHost* host, QueueLimits limits);

  // Queues `msg` (`bytes`: its serialized size) behind what is queued. False if the queue is
  // over its limit: nothing is queued, `why` says so, and the host should declare the node
  // dead and Cancel the session. Does not start a write: call Flush afterwards.
  [[nodiscard]] bool Send(OutQueue::Message msg, size_t bytes, std::string* why);
  // Starts writing the queue if no write is in flight.
  void Flush();
  // Ends the stream (the node sees CANCELLED). Idempotent.
  void Cancel();

  std::string peer() const { return peer_; }
  // Set by the host when it accepts the Hello (read under the host's lock).
  uint64_t node_id = 0;
  uint64_t seq = 0;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  NodeSession(grpc::CallbackServerContext* ctx, SessionHost* host, QueueLimits limits);
  // Ends the session with `status` once no write is in flight; tells the host (once) why.
  void End(grpc::Status status, const std::string& why);
  void MaybeFinish();
  // Tells the host, once, that the session ended and why.
  void ReportEnd(const std::string& why);
  // Holds off Finish while a call into gRPC that must precede it runs; false if already finished.
  bool Pin();
  void Unpin();

  grpc::CallbackServerContext* const ctx_;
  SessionHost* const host_;
  const std::string peer_;
  std::shared_ptr<NodeSession> self_;   // released in OnDone
  proto::NodeMessage in_;               // owned by the one outstanding read
  bool hello_seen_ = false;             // touched by the read reactions only
  std::atomic<bool> accepted_{false};
  std::atomic<bool> end_reported_{false};

  absl::Mutex mu_;
  OutQueue queue_ ABSL_GUARDED_BY(mu_);
  bool ending_ ABSL_GUARDED_BY(mu_) = false;     // End was called: no new writes
  bool finished_ ABSL_GUARDED_BY(mu_) = false;   // Finish was called
  bool done_ ABSL_GUARDED_BY(mu_) = false;       // OnDone ran
  int pins_ ABSL_GUARDED_BY(mu_) = 0;            // see Pin
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::control
