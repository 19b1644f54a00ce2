// What PlacementClient's two files share (sdk/placement_client.cc: the calls;
// sdk/placement_upkeep.cc: re-reporting after a restart, background renewal and the watch
// stream). Not installed.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "ferry/placement.h"
#include "proto/placement.grpc.pb.h"

namespace ferry {

namespace pb = ::ferry::proto::placement;

class PlacementStub {
 public:
  explicit PlacementStub(std::shared_ptr<grpc::Channel> channel) : stub(pb::Placement::NewStub(channel)) {}
  std::unique_ptr<pb::Placement::Stub> stub;
};

// A client's books. `mu` guards everything but the threads (started once, joined in the
// destructor) and `recover_mu` (held by the one recovery running; taken before `mu`).
struct PlacementClientState {
  // Losses kept for WaitLoss before the oldest is dropped.
  static constexpr size_t kMaxLosses = 4096;

  explicit PlacementClientState(PlacementClientOptions o) : options(std::move(o)) {}

  const PlacementClientOptions options;
  mutable absl::Mutex mu;
  // Held leases as granted (incarnation included), by id.
  std::map<uint64_t, pb::Lease> held ABSL_GUARDED_BY(mu);
  // Ephemeral resources this client set: (name, node) -> capacity, re-set after a restart.
  std::map<std::pair<std::string, uint64_t>, double> resources ABSL_GUARDED_BY(mu);
  uint64_t incarnation ABSL_GUARDED_BY(mu) = 0;
  std::deque<LostPlacementLease> losses ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  grpc::ClientContext* watch_ctx ABSL_GUARDED_BY(mu) = nullptr;  // cancelled to stop the watch
  absl::Mutex recover_mu ABSL_ACQUIRED_BEFORE(mu);
  std::thread renewer, watcher;

  // Books a granted lease. True if leases of an older incarnation are held (re-report them).
  bool Book(const pb::Lease& lease) ABSL_LOCKS_EXCLUDED(mu);
  // Notes a lost lease: forgets it, queues it, calls on_loss (after unlocking). A loss found by a
  // call (`pushed` false) is told only for a lease held here (once); one pushed by the watch
  // stream (once per loss by the service) also for this holder's leases granted elsewhere.
  void Lose(uint64_t lease_id, std::string reason, bool pushed = false) ABSL_LOCKS_EXCLUDED(mu);
  // The incarnation to send for `lease_id` (0 if not held here).
  uint64_t IncarnationOf(uint64_t lease_id) const ABSL_LOCKS_EXCLUDED(mu);
};

PlacementLease LeaseFromProto(const pb::Lease& lease);

}  // namespace ferry
