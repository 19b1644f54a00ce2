// Waiter: one waiting call (AcquireSource, Locate, Broadcast, Delete) of the coordinator. It is
// completed exactly once, by whichever comes first:
//   - the change it waits for: the owner calls Poll when something it is registered for
//     changed, and Attempt says whether the call can now be answered;
//   - its deadline, its client's cancellation or the coordinator's shutdown: End(why), and
//     GiveUp says what the call answers then.
// Completion only records the answer; the owner hands it to the client (Deliver, which runs the
// reply callback) after releasing its lock, since answering a gRPC call may run gRPC's reactions
// inline. No thread sleeps for a waiter: the owner keeps its deadline in a DeadlineQueue and
// its registrations (a key, an operation) in the structures that change.
//
// Threading: Poll, End and done() are called under the owner's lock (the Coordinator's), which
// is also held while Attempt and GiveUp run; Deliver without it, once, by whoever completed it.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ferry::control {

enum class WaitEnd { kDeadline, kCancelled, kShutdown };

class Waiter {
 public:
  // `reply` answers the call with the final status (the subclass has filled the reply message).
  using Reply = absl::AnyInvocable<void(absl::Status) &&>;

  Waiter(absl::Time deadline, Reply reply) : deadline_(deadline), reply_(std::move(reply)) {}
  virtual ~Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  absl::Time deadline() const { return deadline_; }
  // Set by the owner when it files the waiter (its key in the owner's deadline queue).
  uint64_t id = 0;

  // Tries to complete the call (Attempt). True if this completed it: the caller must Deliver
  // after unlocking. False if it keeps waiting or had completed already.
  [[nodiscard]] bool Poll();
  // Ends the call for `why` (GiveUp), unless it has completed already. True if this ended it.
  [[nodiscard]] bool End(WaitEnd why);
  // Completes the call with `status` directly (an answer found elsewhere). True if this did.
  [[nodiscard]] bool Complete(absl::Status status);
  bool done() const { return done_; }

  // Answers the client. Call once, without the owner's lock, after Poll/End/Complete returned true.
  void Deliver();

 protected:
  // Under the owner's lock: the answer if the call can be answered now, nullopt to keep waiting.
  virtual std::optional<absl::Status> Attempt() = 0;
  // Under the owner's lock: the answer when the call ends for `why` without its change.
  virtual absl::Status GiveUp(WaitEnd why) = 0;
  // Under the owner's lock, once, at completion: leave whatever the waiter is registered in.
  virtual void Unregister() {}

 private:
  void Finish(absl::Status status);

  const absl::Time deadline_;
  Reply reply_;
  bool done_ = false;
  bool delivered_ = false;
  absl::Status status_;
};

}  // namespace ferry::control
