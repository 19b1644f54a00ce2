// Collective: one collective operation of the coordinator, behind one interface. An operation
// is keyed by its operation id (OpId): the instructions it sends carry it
// (PullInstruction.broadcast_id, DropInstruction.op_id), and so do the nodes' reports about them
// (ReportTransferRequest.op_id, DropDone.op_id), so reports reach their operation without
// scanning object names. A report with op_id 0 (a ferryd that does not send op ids yet, or a
// Get) reaches every operation on that object.
//
// Life of an operation (the Coordinator drives it, under its lock; see coordinator.h):
//   Start(ctx)              -> the instructions to send (or an error: the call fails, nothing sent)
//   OnReport / OnNodeDeath / OnNodeAck / OnObjectChanged
//                           -> more instructions (re-planning) as the cluster changes
//   Done(ctx)               -> polled after every event; true: the call can be answered
//   Conclude(ctx, why)      -> the result, at Done or at the deadline / cancellation / shutdown
// The waiting call that started it holds no thread: its Waiter is polled after the events that
// reach the operation (control/waiter.h).
//
// Implementations: BroadcastCollective (broadcast.h; also the implicit broadcast that
// AcquireSource attaches receivers to), BatchBroadcastCollective (batch_broadcast.h),
// DeleteCollective (delete.h), ReduceCollective (reduce.h: Reduce and AllReduce). How they map onto
// this interface, each as one file here:
//
// - Reduce (a tree of nodes whose chunks are combined upward). Start: picks the positions that
//   can be filled from the inputs already published (ctx.directory), plans the tree with a pure
//   planner (control/planner/, like BroadcastPlanner: S / (B * L) chain lengths from
//   ctx.cluster's measured links), and returns one instruction per placed node ("you are position
//   p of reduce R, pull from children c1, c2 into a reduce sink"; a new CoordMessage case with
//   op_id). OnObjectChanged: an input was published -> place it, instruct it and its parent.
//   OnReport (op_id = R): a position finished (its partial sum is complete) -> free it, tell the
//   parent; a child failed -> re-plan the subtree. OnNodeDeath: re-plan every position on or
//   under the dead node: a spare ready input takes its slot, the partial sums on the path to the
//   root are recomputed (instructions to those ancestors to drop and re-pull). Done: the root
//   reported COMPLETED. Conclude: the result's ref and which inputs were used, or which inputs
//   were lost (DATA_LOSS) / timed out.
// - AllReduce = the reduce above plus, once the root holds its first chunks, the same
//   attachments as BroadcastCollective for the result (receivers pull the root's partial result
//   as it is reduced): one class that owns both plans, Done when every target holds the result.
// - A batch of objects is BatchBroadcastCollective: keys() returns every object of the batch,
//   Start returns one BatchPullInstruction per target (per group of objects held by one
//   node), and OnBatchReport consumes the targets' progress (batch_broadcast.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/cluster/cluster_view.h"
#include "control/collectives/batch_chains.h"
#include "core/ids.h"
#include "control/cluster/session_queue.h"
#include "control/directory/directory.h"
#include "proto/coordinator.pb.h"

namespace ferry::control {

// One message for one node. `msg` may be shared by many instructions (the same bytes to many
// queues); `bytes` is its serialized size.
struct Instruction {
  NodeId node = 0;
  OutQueue::Message msg;
  size_t bytes = 0;
};
using Instructions = std::vector<Instruction>;
// Wraps `msg` as an Instruction for `node`.
Instruction MakeInstruction(NodeId node, proto::CoordMessage msg);
// A fresh random incarnation for an object the coordinator creates (a reduce's or a group
// collective's result): non-zero, below 2^63 (so incarnation + 1 names its scratch).
uint64_t NewIncarnation();

// What an operation sees while it runs; valid for one call only.
struct CollectiveContext {
  const ClusterView& cluster;
  Directory& directory;
  absl::Time now;
  std::atomic<uint64_t>* attached = nullptr;   // counts receivers attached in the directory (metrics)
  InFlightBatches* batches = nullptr;          // batch chains a new batch may join (batch_chains.h)
};

enum class Conclusion { kDone, kDeadline, kCancelled, kShutdown };

class Collective {
 public:
  explicit Collective(OpId id) : id_(id) {}
  virtual ~Collective() = default;
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  OpId id() const { return id_; }
  // The objects it is about: reports with op_id 0 about them, and their changes, reach it.
  virtual std::vector<Directory::Key> keys() const = 0;

  // Plans the operation; the instructions to send. An error fails the call (nothing is sent).
  virtual absl::StatusOr<Instructions> Start(CollectiveContext& ctx) = 0;
  // A node's transfer report for this operation (or, with op_id 0, about one of its objects).
  virtual Instructions OnReport(CollectiveContext& ctx, const proto::ReportTransferRequest& report) = 0;
  // `node` died (every operation hears of every death).
  virtual Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) = 0;
  // `node` acknowledged an instruction of this operation (DropDone{op_id}).
  virtual Instructions OnNodeAck(CollectiveContext& ctx, NodeId node) { return {}; }
  // One of its objects changed in the directory (published, unpublished, deleted, a copy done).
  virtual Instructions OnObjectChanged(CollectiveContext& ctx, const Directory::Key& key) { return {}; }
  // `node`'s progress on a batch instruction of this operation (BatchReport{op_id}).
  virtual Instructions OnBatchReport(CollectiveContext& ctx, NodeId node, const proto::BatchReport& report) {
    return {};
  }

  // `node`'s report on a reduce position of this operation (ReducePositionReport{op_id}).
  virtual Instructions OnReduceReport(CollectiveContext& ctx, NodeId node, const proto::ReducePositionReport& report) {
    return {};
  }
  // `node`'s report on its CollectiveProgram of this operation (a static group's collective).
  virtual Instructions OnProgramReport(CollectiveContext& ctx, NodeId node, const proto::ProgramReport& report) {
    return {};
  }

  // The objects whose directory entries this operation changed since the last call (a batch's
  // targets completing copies): the coordinator wakes the calls waiting on them.
  virtual std::vector<Directory::Key> TakeChangedKeys() { return {}; }

  // Whether the operation is finished and its call can be answered.
  virtual bool Done(const CollectiveContext& ctx) const = 0;
  // Records the result (called once): at Done, or when the call ends for another reason.
  virtual void Conclude(CollectiveContext& ctx, Conclusion why) = 0;
  // The call's status after Conclude (OK: the reply holds the result). A Reduce that lost
  // inputs answers DATA_LOSS, one that timed out DEADLINE_EXCEEDED, both naming the inputs.
  virtual absl::Status status() const { return absl::OkStatus(); }

 private:
  const OpId id_;
};

}  // namespace ferry::control
