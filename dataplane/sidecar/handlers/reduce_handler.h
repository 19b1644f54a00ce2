// A ReducePosition (this node's place in a reduce tree, control/collectives/reduce.h): builds the
// position's partial sum and reports it done or failed on the session stream
// (ReducePositionReport with the instruction's op_id, position and generation).
//
// Building a position, on the reduce executor:
//   1. creates the partial-sum object (`partial`: a receiving object in the store, tracked in
//      the instruction's chunks) and copies this node's input into it (one pass over the bytes;
//      the input must be a sealed local object of the instruction's size);
//   2. pulls every child's partial sum at once (one Puller per child, through the UCX fetch
//      path) into a ReduceSink group over the object: each chunk is combined as it lands, and
//      marked in the store once every child has combined it, so the parent pulling this object
//      is served each chunk as soon as it is combined (cut-through up the tree);
//   3. seals it (FinishReceiving); at the root it is the result and is published.
// A newer generation of the same position (a recompute, or new children) cancels the running
// build, waits for it to end, drops the object it built, and builds again. Nothing here drops
// a finished non-root partial sum: the coordinator sends a DropInstruction when the root is
// done.
//
// Scratch: the children's chunks land in staging slots of one registered scratch region made at
// start-up (`slot_sets` sets of kSetBytes, one set per running build with children), so nothing
// is registered on the transfer path. A build waits for a free set.
//
// Threading: Handle is called from the coordinator session thread and never blocks. Shutdown
// (after ObjectFetcher::Stop) cancels the running builds and joins the executor's threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/executor.h"
#include "dataplane/engine/chunk_sink.h"
#include "dataplane/sidecar/object_fetcher.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/memory_region.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

struct ReduceDeps {
  ObjectFetcher* fetcher = nullptr;   // adds children as data-plane peers
  ObjectStore* store = nullptr;
  Transport* transport = nullptr;
  MemoryRegion arena;                 // the arena's registration (store offsets point into it)
  MemoryRegion scratch;               // slot_sets * kSetBytes of registered host memory
  uint32_t slot_sets = 0;
  double max_pull_rate_Bps = 0;       // > 0: cap on each child pull's rate (as for Gets)
  NodeCounters* counters = nullptr;   // bytes and chunks received count the children's chunks
  // Sends one message on the coordinator session; false if none is open (the report is lost:
  // the coordinator's deadline ends the reduce).
  std::function<bool(const proto::NodeMessage&)> send;
  // Publishes a sealed local object to the cluster (the result, at the root).
  std::function<absl::Status(const std::string& ns, const std::string& key)> publish;
};

class ReduceHandler {
 public:
  // One scratch set: two children x four chunks of the coordinator's largest reduce chunk.
  static constexpr uint64_t kSetBytes = uint64_t{2} * 4 * (1 << 20);
  static constexpr uint32_t kMaxChildren = 2;
  // Finished positions remembered (to drop their object when a newer generation comes).
  static constexpr size_t kMaxRemembered = 4096;

  // All deps must outlive this. At most `max_positions` builds run at once (more wait).
  ReduceHandler(ReduceDeps deps, size_t max_positions);
  ~ReduceHandler();   // Shutdown()

  void Handle(const proto::ReducePosition& pos);
  // Cancels running builds and joins them. Blocks until they end.
  void Shutdown();

 private:
  struct Task;
  using Key = std::pair<uint64_t, uint32_t>;   // (op_id, position)

  void Run(const std::shared_ptr<Task>& task, const std::shared_ptr<Task>& previous);
  // Builds the partial sum; on failure `*failed_child` names the child whose pull failed.
  absl::Status Build(Task& task, uint64_t* failed_child);
  // Pulls every child's partial sum into the object at `offset` (combined by a sink group).
  absl::Status PullChildren(Task& task, uint64_t offset, uint64_t* failed_child);
  // One child's pull into `sink` (PullSpec::remote_key = the child's object). On failure it
  // aborts the receiving object, which ends the sibling's pull too.
  absl::Status PullChild(Task& task, const proto::ReduceChild& child, ChunkSink* sink, uint64_t offset,
                         uint32_t window);
  absl::StatusOr<uint32_t> TakeSlotSet(Task& task);
  void GiveSlotSet(uint32_t set);
  void Report(const proto::ReducePosition& pos, const absl::Status& s, uint64_t failed_child);
  void ForgetOldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReduceDeps deps_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The latest task of each position (running or finished).
  std::map<Key, std::shared_ptr<Task>> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_sets_ ABSL_GUARDED_BY(mu_);
  Executor builds_;   // owns every build thread; joined by Shutdown (last: joined first)
};

}  // namespace ferry::dataplane
