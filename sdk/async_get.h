// PendingGet and GetRegistry: the machinery behind Client::GetAsync. Internal to libferry.
//
// A PendingGet is one Get RPC to ferryd started on gRPC's callback API (the unary call's
// callback form, stub->async()->Get): it owns the call's ClientContext, request and reply, and
// records the outcome when gRPC's callback runs. No thread is created per Get; the callback
// runs on one of gRPC's own threads and only stores the outcome and wakes waiters. Turning a
// reply into a pinned view (and dropping the pin when that fails) happens later, in the thread
// that waits (ClientImpl::FinishGet), so the callback never blocks.
//
// The GetRegistry lists a client's Gets in flight, so that destroying the client can cancel
// them all and wait until every callback has returned. It is held by shared_ptr from the
// ClientImpl and from every callback, so the callback's last step (leaving the registry)
// never touches freed memory. The callback holds no reference to the ClientImpl: the channel
// is therefore never destroyed on one of gRPC's threads.
//
// Lock order: PendingGet::mu_ before AnyWaiter::mu. No lock is held while calling
// ClientContext::TryCancel, which may run the completion callback inline.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ferry/object.h"
#include "proto/sidecar.pb.h"

namespace ferry {

// Woken by any of several PendingGets finishing (WaitAny). Lives on the waiter's stack; it is
// registered with each PendingGet for the duration of one wait.
struct AnyWaiter {
  absl::Mutex mu;
  absl::CondVar cv;
  bool fired ABSL_GUARDED_BY(mu) = false;
};

class PendingGet {
 public:
  // A Get about to be started (the caller fills request() and ctx(), then starts the RPC).
  explicit PendingGet(ObjectName name);
  // A Get that failed before it started (bad name, closed client): finished at once.
  PendingGet(ObjectName name, absl::Status error);
  PendingGet(const PendingGet&) = delete;
  PendingGet& operator=(const PendingGet&) = delete;

  const ObjectName& name() const { return name_; }
  // The call's state. Only the starter touches these before the RPC starts, and only the
  // thread that takes the outcome reads them after it finished.
  grpc::ClientContext& ctx() { return ctx_; }
  proto::GetRequest& request() { return request_; }
  proto::GetReply& reply() { return reply_; }

  // Called once, by gRPC's completion callback: records `status` and wakes every waiter.
  void Complete(grpc::Status status);

  bool Done() const;
  // Waits until Done() or `deadline`; returns Done().
  bool WaitDone(absl::Time deadline) const;
  // Marks the Get cancelled and asks gRPC to end the RPC (not under any lock).
  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // What the finished RPC produced, handed out once.
  struct Outcome {
    absl::Status early;           // set for a Get that never started
    grpc::Status rpc;             // the RPC's status otherwise
    bool cancelled = false;       // Cancel was called before the outcome was taken
  };
  // nullopt if not finished yet or already taken (*already_taken says which).
  std::optional<Outcome> Take(bool* already_taken);

  // WaitAny support: returns true (and does not register) if already done.
  bool AddWaiter(AnyWaiter* waiter);
  void RemoveWaiter(AnyWaiter* waiter);

 private:
  const ObjectName name_;
  grpc::ClientContext ctx_;
  proto::GetRequest request_;
  proto::GetReply reply_;
  std::atomic<bool> cancelled_{false};

  // Guards the outcome; `done_` goes true exactly once and then the outcome never changes
  // until it is taken.
  mutable absl::Mutex mu_;
  mutable absl::CondVar done_cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool taken_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status early_ ABSL_GUARDED_BY(mu_);
  grpc::Status rpc_status_ ABSL_GUARDED_BY(mu_);
  std::vector<AnyWaiter*> waiters_ ABSL_GUARDED_BY(mu_);
};

class GetRegistry {
 public:
  // Records `get` as in flight and returns its id; nullopt if Close was called (the get must
  // then not be started).
  std::optional<uint64_t> Register(const std::shared_ptr<PendingGet>& get);
  // Called by the completion callback as its very last step.
  void Unregister(uint64_t id);
  // Refuses new Gets, cancels those in flight and waits until every callback has left.
  void CloseAndDrain();

 private:
  absl::Mutex mu_;
  absl::CondVar drained_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Weak: a handle or the callback owns the PendingGet; an entry may outlive both briefly.
  absl::flat_hash_map<uint64_t, std::weak_ptr<PendingGet>> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
