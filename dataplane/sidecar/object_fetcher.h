// The Get path of ferryd: a local copy if there is one, otherwise one pull at a time per key
// from the senders the coordinator names (AcquireSource), re-planning when a sender fails, with
// the checksum check of every received copy and a transfer report for each outcome.
//
// This is the one place that drives the Puller (the engine's interface may change under it).
//
// Threading: every public method is thread-safe and blocks (coordinator calls, pulls); they are
// called from gRPC handler threads and from broadcast-pull tasks. Stop makes waiting and
// running Gets end soon (CANCELLED); it does not wait for them.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/engine/puller.h"
#include "dataplane/sidecar/coordinator_client.h"
#include "dataplane/sidecar/link_estimator.h"
#include "dataplane/sidecar/transfer_reporter.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

struct NodeCounters {
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> chunks_received{0};
  std::atomic<uint64_t> pulls{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> checksum_mismatches{0};   // received copies whose bytes did not match
};

struct GetResult {
  PinnedObject pin;
  bool pulled = false;
  uint64_t source_node = 0;
  double seconds = 0;
};

struct FetchOptions {
  uint32_t window_override = 0;   // > 0: chunks in flight, whatever the coordinator says
  uint32_t max_retries = 16;      // sender failures tolerated per Get
  double max_pull_rate_Bps = 0;   // > 0: cap on each pull's rate
};

// What started a fetch, besides a client's Get.
struct FetchOrigin {
  uint64_t op_id = 0;   // the instruction's operation id, sent back in every report (0: a Get)
  // The sender the coordinator already attached us to: the first attempt uses it instead of
  // calling AcquireSource. Must outlive the fetch.
  const proto::AcquireSourceReply* planned = nullptr;
};

// The pieces the fetcher uses; all must outlive it.
struct FetchDeps {
  uint64_t node_id = 0;
  uint8_t* arena_base = nullptr;   // where the store's offsets point
  RegionId arena_region = kNoRegion;   // the arena's registration with the transport (pulls land there)
  ObjectStore* store = nullptr;
  Transport* transport = nullptr;
  CoordinatorClient* coordinator = nullptr;
  TransferReporter* reports = nullptr;
  LinkEstimator* links = nullptr;
  NodeCounters* counters = nullptr;
};

class ObjectFetcher {
 public:
  ObjectFetcher(FetchDeps deps, FetchOptions options);

  // The object pinned for `session`: the local copy, or one pulled into the store. A second
  // Get of a key being pulled waits for the first pull. Failures name the object and the
  // last sender failure; NOT_FOUND when the coordinator knows no such object.
  absl::StatusOr<GetResult> Get(const std::string& ns, const std::string& key, SessionId session,
                                absl::Time deadline) {
    bool abort_reported = false;
    return Get(ns, key, session, deadline, FetchOrigin{}, &abort_reported);
  }
  // As above, for an instruction. `*abort_reported` is set when a failure was already
  // reported to the coordinator as ABORTED (so the caller does not report it a second time).
  absl::StatusOr<GetResult> Get(const std::string& ns, const std::string& key, SessionId session,
                                absl::Time deadline, const FetchOrigin& origin, bool* abort_reported);

  // Stores a small object whose bytes came with a coordinator message (checksum checked).
  // Also a packed object of a batch (its bytes came in a pack fetch). ALREADY_EXISTS if the
  // node has (or is receiving) the object.
  [[nodiscard]] absl::Status StoreInline(const std::string& ns, const std::string& key,
                                         const proto::ObjectMeta& meta, absl::string_view data);
  // Adds `peer` to the transport with `address` unless it is known already.
  [[nodiscard]] absl::Status EnsurePeer(uint64_t peer, const std::string& address);

  // Ends waiting and running Gets (CANCELLED) and refuses new ones. Does not block.
  void Stop();

 private:
  struct Fetch;
  absl::StatusOr<GetResult> FetchRemote(const std::string& ns, const std::string& key, SessionId session,
                                        absl::Time deadline, const FetchOrigin& origin, bool* abort_reported);
  // Pulls from the sender in `reply` into our receiving copy. true: the copy is complete;
  // false: the sender failed and was reported (try another); an error: the Get has failed
  // (already given up on).
  absl::StatusOr<bool> PullAttempt(Fetch& f, const proto::AcquireSourceReply& reply, absl::Time asked);
  absl::Status GiveUp(Fetch& f, absl::Status why, uint64_t sender, bool attached);
  absl::Status AlreadyHere(Fetch& f, absl::Status why);
  // One AcquireSource call: a sender (or the inline bytes) for the object, skipping `exclude`.
  // `incarnation`: of the partial copy we resume (0: none), so that a deleted one ends the Get.
  absl::Status AcquireSource(const std::string& ns, const std::string& key, const std::vector<uint64_t>& exclude,
                             uint64_t incarnation, absl::Duration remaining, proto::AcquireSourceReply* reply);
  // The one call into the engine's Puller.
  absl::Status PullFromSender(const PullSpec& spec, PullStats* total);
  // For a checksummed object: OK if the bytes at `offset` match meta.checksum, else DATA_LOSS
  // naming the object, where the copy came from and both hashes.
  absl::Status VerifyChecksum(const std::string& ns, const std::string& key, const StoredMeta& meta,
                              uint64_t offset, uint64_t from);
  void Report(const Fetch& f, uint64_t sender, proto::ReportTransferRequest::Outcome outcome,
              const std::string& detail, const PullStats& stats, uint64_t incarnation);

  const FetchDeps deps_;
  const FetchOptions options_;
  Puller puller_;
  std::atomic<bool> stopping_{false};   // also PullSpec::stop: ends running pulls
  absl::Mutex mu_;
  // Keys this node is pulling right now: a second Get waits for the first pull.
  std::set<std::pair<std::string, std::string>> pulling_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::dataplane
