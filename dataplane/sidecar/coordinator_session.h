// ferryd's session with the coordinator (docs/protocol.md "Node session"): opens the Session
// stream, sends Hello, waits for Welcome, then sends a Heartbeat every interval and
// dispatches every CoordMessage by its kind to one handler (Welcome and Membership to the
// MembershipHandler, PullInstruction to the PullHandler, BatchPullInstruction to the batch-pull
// handler, ReducePosition to the reduce handler, DropInstruction to the DropHandler, answering DropDone). Others (batch pulls) send
// messages on the stream through Send. When the stream ends it reconnects with backoff (100 ms doubling to
// 2 s), until Stop. A refusal (ALREADY_EXISTS, UNAUTHENTICATED, INVALID_ARGUMENT,
// PERMISSION_DENIED) is kept for WaitRegistered / refusal().
//
// Threads: one session thread (Start .. Stop) that reads and dispatches, and per session one
// writer thread (heartbeats and what Send queued), started on the first Welcome and joined
// when the session ends. Both are
// owned and joined; nothing is detached. Writes to the stream are serialized.
// Every public method is thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/sidecar/coordinator_client.h"
#include "dataplane/sidecar/handlers/drop_handler.h"
#include "dataplane/sidecar/handlers/membership_handler.h"
#include "dataplane/sidecar/handlers/pull_handler.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

struct SessionDeps {
  std::string node_name;   // for messages
  uint64_t node_id = 0;
  CoordinatorClient* client = nullptr;
  MembershipHandler* membership = nullptr;
  PullHandler* pulls = nullptr;
  DropHandler* drops = nullptr;
  std::function<void(const proto::BatchPullInstruction&)> batch_pull;   // BatchPullInstruction
  std::function<void(const proto::ReducePosition&)> reduce;             // ReducePosition
  std::function<void(const proto::CollectiveProgram&)> program;         // CollectiveProgram
  std::function<void(const proto::ProgramEnd&)> program_end;            // ProgramEnd
  std::function<proto::Hello()> hello;             // the Hello of a new session
  std::function<proto::Heartbeat()> heartbeat;     // figures for a heartbeat (seq set here)
  std::function<void(const proto::Welcome&)> on_welcome;   // beyond membership (optional)
};

class CoordinatorSession {
 public:
  explicit CoordinatorSession(SessionDeps deps);
  ~CoordinatorSession();   // Stop()

  // Starts the session thread. Call once.
  void Start();
  // Cancels the open stream and joins the session thread (and its heartbeat thread).
  // Idempotent. Blocks until a handler that is running returns.
  void Stop();

  // Waits up to `timeout` for the first registration's outcome: OK once registered; the
  // coordinator's refusal as a status naming it; DEADLINE_EXCEEDED if the coordinator did not
  // answer in time (the session keeps trying). Blocks.
  [[nodiscard]] absl::Status WaitRegistered(absl::Duration timeout);
  bool connected() const;
  // Queues `msg` for the open stream (the session's writer thread sends it after what is
  // queued). False, with nothing queued, when no stream is registered or kMaxOutbox messages
  // wait already; a queued message is lost if the stream ends before it is written. Never
  // blocks on the stream.
  bool Send(proto::NodeMessage msg);
  static constexpr size_t kMaxOutbox = 10000;
  // Why the coordinator last refused our registration (OK: it did not, or accepted since).
  absl::Status refusal() const;

 private:
  void Loop();
  void RunSession();
  // One message from the coordinator, by kind (on a membership gap it cancels `stream`).
  void Dispatch(const proto::CoordMessage& msg, CoordinatorStream* stream);
  void StartHeartbeat(CoordinatorStream* stream, absl::Duration interval);
  void StopHeartbeat();
  // Writes one message, serialized with the heartbeat's writes.
  bool Write(CoordinatorStream* stream, const proto::NodeMessage& msg);

  const SessionDeps deps_;
  std::thread thread_;   // the session thread (Loop)

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;   // registered (Welcome) on the open stream
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  CoordinatorStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;   // the open stream, for Stop's Cancel

  // Serializes writes to the stream (session thread: Hello, DropDone; heartbeat thread).
  absl::Mutex write_mu_ ABSL_ACQUIRED_AFTER(mu_);
  bool heartbeat_stop_ ABSL_GUARDED_BY(write_mu_) = false;
  bool writer_live_ ABSL_GUARDED_BY(write_mu_) = false;   // the writer thread runs for the open stream
  std::deque<proto::NodeMessage> outbox_ ABSL_GUARDED_BY(write_mu_);   // for the writer (Send)
  std::thread heartbeat_;   // touched by the session thread only
};

}  // namespace ferry::dataplane
