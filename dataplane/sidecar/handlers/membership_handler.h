// Applies the coordinator's Welcome and Membership messages to this node's data-plane peers
// (docs/protocol.md "Membership"): one snapshot after each Welcome, then epoch-ordered deltas.
// Peers that join are added to the transport, peers that leave are removed from it (which
// fails pulls from dead nodes at once).
//
// After a Welcome that was not preceded by our death (a coordinator restart: nodes
// re-register one by one), a peer missing from the membership is kept for the liveness
// timeout instead of being dropped at once: the others have not re-registered yet, and
// dropping them would close connections they still use. After a Welcome with
// was_declared_dead, every peer connection is reset (the others closed theirs to us).
//
// Threading: every method is thread-safe; transport calls are made outside the lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/transport/transport.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

class MembershipHandler {
 public:
  using Clock = std::function<absl::Time()>;
  // `transport` must outlive this. `now` is the clock for the removal grace.
  MembershipHandler(uint64_t self, Transport* transport, Clock now = [] { return absl::Now(); });

  // A new session begins: it counts epochs anew (its first Membership is a snapshot).
  void OnSessionStart();
  void OnWelcome(const proto::Welcome& w);
  // An error when `m` does not follow the last epoch: this view can no longer be trusted,
  // and the caller ends the session (the next one starts with a snapshot).
  [[nodiscard]] absl::Status OnMembership(const proto::Membership& m);
  // Drops the peers kept past their grace that are still not members (called on every
  // heartbeat).
  void ExpireUnconfirmedPeers();

  // Current peers, node id -> data-plane address (for tests and status).
  std::map<uint64_t, std::string> peers() const;
  // Peers kept in the removal grace though missing from the membership.
  std::map<uint64_t, std::string> unconfirmed_peers() const;

 private:
  const uint64_t self_;
  Transport* const transport_;
  const Clock now_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, std::string> peers_ ABSL_GUARDED_BY(mu_);   // node id -> dp address
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;                      // last applied Membership
  // Until then a peer missing from the membership moves to unconfirmed_peers_ instead of
  // being removed. Invariant: no id is in both peers_ and unconfirmed_peers_.
  absl::Time removal_grace_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<uint64_t, std::string> unconfirmed_peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::dataplane
