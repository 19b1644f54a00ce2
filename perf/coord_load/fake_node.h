// A fake ferryd for the coordinator load test: one Session stream on gRPC's callback API, no
// thread of its own. It sends Hello, then a Heartbeat whenever the harness's ticker asks, and
// reads everything the coordinator pushes, counting messages and serialized bytes and keeping
// the live set of the newest Membership it has seen.
//
// It speaks only the wire protocol (proto/coordinator.proto), over a generic stub, so the test
// measures whichever coordinator listens. MembershipView::Apply is the one place that knows
// how a Membership message changes a node's view of the cluster.
//
// Threading: gRPC's callback threads run the On* reactions; the harness calls Start, Heartbeat,
// Close, SetTarget and Snapshot from its own threads. Everything mutable is under mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/coordinator.pb.h"

namespace ferry::perf {

using Clock = std::chrono::steady_clock;

// An order-independent fingerprint of a set of node ids: equal sets give equal fingerprints,
// and different sets collide with probability ~2^-64.
struct SetFingerprint {
  uint64_t count = 0;
  uint64_t sum = 0;
  uint64_t xor_ = 0;
  void Add(uint64_t id);
  void Remove(uint64_t id);
  bool operator==(const SetFingerprint&) const = default;
};

// A node's view of the live set, built from what the coordinator pushed in this session.
class MembershipView {
 public:
  // Applies one Membership; returns whether the live set changed. A snapshot replaces the
  // view (one not newer than the view is ignored: a coordinator from before deltas sent full
  // lists that could arrive out of order); a delta must follow the view's epoch by one and
  // remove only live ids and add only new ones, else FAILED_PRECONDITION (the protocol was
  // broken; the view is then not to be trusted).
  absl::StatusOr<bool> Apply(const proto::Membership& m);
  uint64_t epoch() const { return epoch_; }
  const SetFingerprint& fingerprint() const { return fp_; }
  const std::vector<uint64_t>& ids() const { return ids_; }   // sorted

 private:
  bool any_ = false;
  uint64_t epoch_ = 0;
  SetFingerprint fp_;
  std::vector<uint64_t> ids_;
};

// Counters shared by every fake node of one run, and the condition the harness waits on.
class Tally {
 public:
  // Starts a new wait: `matched` counts nodes whose view equals their target for `change`.
  void BeginChange(uint64_t change);
  // Waits until `pred` holds or `deadline` passes; returns whether it held.
  struct Counts {
    uint64_t welcomed = 0, matched = 0, unexpected_done = 0, errors = 0;
  };
  bool WaitFor(const std::function<bool(const Counts&)>& pred, absl::Time deadline);
  Counts counts();

  void Welcomed();
  void Matched(uint64_t change, int delta);
  void UnexpectedDone(std::string what);   // counts an error too, under the same lock
  void Error(std::string what);
  std::vector<std::string> errors();

  std::atomic<uint64_t> heartbeats_acked{0};
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> membership_messages{0};

 private:
  absl::Mutex mu_;
  absl::CondVar cv_;   // signalled on every change of counts_
  uint64_t change_ ABSL_GUARDED_BY(mu_) = 0;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

struct NodeSpec {
  uint64_t id = 0;
  std::string name;
  std::string dp_address;
  std::string token;
};

class FakeNode final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  struct Snapshot {
    bool welcomed = false;
    uint64_t welcome_id = 0;
    uint32_t heartbeat_interval_ms = 0;
    uint64_t messages = 0, bytes = 0, heartbeats_acked = 0;
    Clock::time_point last_heartbeat_at;   // the last heartbeat write that completed
    bool matched = false;
    Clock::time_point matched_at;     // receipt of the message that made the view equal the target
    uint64_t epoch = 0;
    std::vector<uint64_t> view;        // sorted live ids of the newest Membership
    bool done = false;
    std::string status;                // the stream's final status, once done
  };

  FakeNode(NodeSpec spec, Tally* tally);
  const NodeSpec& spec() const { return spec_; }

  // Opens the Session stream and sends Hello. Call once.
  void Start(grpc::GenericStub* stub, const std::string& method);
  // Sends one Heartbeat if the node is welcomed, open and has no write in flight.
  void Heartbeat();
  // Cancels the stream (the node leaves). Its end is then expected, not an error. Idempotent.
  void Close();
  // The live set this node's view must reach for `change`.
  void SetTarget(uint64_t change, const SetFingerprint& target);
  // `with_view` copies the newest live set too (O(nodes)).
  Snapshot GetSnapshot(bool with_view = false);
  // Waits for OnDone; returns false at the deadline.
  bool WaitDone(absl::Time deadline);

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

 private:
  void Handle(const proto::CoordMessage& msg, Clock::time_point at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateMatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const NodeSpec spec_;
  Tally* const tally_;
  grpc::ClientContext ctx_;
  grpc::ByteBuffer read_buf_;   // owned by the one outstanding read

  absl::Mutex mu_;
  grpc::ByteBuffer write_buf_ ABSL_GUARDED_BY(mu_);   // owned by the one outstanding write
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;     // Close was called
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;  // the read side saw the stream's end
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;   // our hold on the call: OnDone cannot run while set
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  Snapshot snap_ ABSL_GUARDED_BY(mu_);
  MembershipView view_ ABSL_GUARDED_BY(mu_);
  Clock::time_point view_changed_at_ ABSL_GUARDED_BY(mu_);
  uint64_t change_ ABSL_GUARDED_BY(mu_) = 0;
  SetFingerprint target_ ABSL_GUARDED_BY(mu_);
  bool has_target_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::perf
