// A BatchPullInstruction (a target's share of a batch broadcast): pulls the named objects from
// the instruction's sender, in order, on the batch-pull executor, and reports progress to the
// coordinator as BatchReports on the session stream.
//
// How each entry travels:
// - small entries (at most pack_bytes) are packed: consecutive ones, up to pack_bytes in all,
//   are asked for in one pack fetch (chunk_request.h) that lands in a pack buffer; the objects
//   are then stored from it (checksums checked) and sealed. Up to `window` packs are in flight.
// - larger entries are pulled in chunks through ObjectFetcher::Get with the sender already
//   chosen (as a planned PullInstruction is), so the sender may be a partial copy that is still
//   receiving (cut-through), and a failing sender is replaced by the usual re-planning; two of
//   them at a time (each on a thread of its own), so that the link does not idle between them.
// - entries this node holds already are reported complete at once.
//
// Failures: a pack fetch that fails because the sender failed (UNAVAILABLE) ends the
// instruction with sender_failed (the coordinator re-instructs from another copy, with the
// entries still missing); any other pack failure is retried entry by entry through
// ObjectFetcher::Get, so each entry gets its own outcome (a deleted object: NOT_FOUND for that
// entry only). Every entry ends completed or failed, or the instruction ends with
// sender_failed; the final report says which.
//
// Threading: Handle is called from the coordinator session thread and never blocks on a pull.
// Shutdown (after ObjectFetcher::Stop, so that running Gets end) stops the running batches:
// their fetches are cancelled and waited for (a pack buffer is reused only after its fetch has
// completed), and the executor's threads are joined.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/executor.h"
#include "dataplane/engine/pack_buffers.h"
#include "dataplane/sidecar/object_fetcher.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

struct BatchPullDeps {
  ObjectFetcher* fetcher = nullptr;
  ObjectStore* store = nullptr;
  Transport* transport = nullptr;
  PackBuffers* packs = nullptr;   // receive-side pack buffers
  // Sends one message on the coordinator session; false if no session is open (the report is
  // lost: the coordinator times the batch out for this node).
  std::function<bool(const proto::NodeMessage&)> send;
};

class BatchPullHandler {
 public:
  // All deps must outlive this.
  BatchPullHandler(BatchPullDeps deps, size_t max_batches);
  ~BatchPullHandler();   // Shutdown()

  void Handle(const proto::BatchPullInstruction& batch);
  // Stops running batches and joins them. Blocks until they end.
  void Shutdown();

  size_t running() const { return batches_.running(); }

 private:
  class Run;
  // Runs the instructions of one operation in the order they came, on one executor thread.
  void RunOperation(uint64_t op_id);
  void Refuse(const proto::BatchPullInstruction& batch, const absl::Status& why);

  const BatchPullDeps deps_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  // Instructions of operations that have a running task, not started yet. A target lacking
  // many entries gets several instructions of one operation; running them at once would
  // split its pack buffers between them, and each part would hold buffers while waiting for
  // a sender whose own parts wait in turn (a chain of nodes can stall so), so they run in
  // order, one at a time.
  std::map<uint64_t, std::deque<proto::BatchPullInstruction>> queued_ ABSL_GUARDED_BY(mu_);
  Executor batches_;   // owns every batch-pull thread; joined by Shutdown (last: joined first)
};

}  // namespace ferry::dataplane
