// Reduce and AllReduce on a dynamic tree (the Reduce / AllReduce RPCs; collective.h says how
// they map onto the Collective interface, docs/protocol.md "Reduce" what travels).
//
// Inputs are named by ref, one per node, and need not exist when the call starts: an input
// becomes ready when its creator publishes it (Start for those published already,
// OnObjectChanged for later ones). The first ready input fixes the size, and with it the
// tree's shape (ReducePlanner over PlanReduce's chain length and chunk); every later one must
// match it. The planner's "nodes" are input numbers (index + 1), mapped here to the node that
// holds the input, so a node's death fails every input it held (InputFailed).
//
// A position is sent to its node (ReducePosition) once all its children are placed; a leaf
// needs no instruction (its partial sum is its input, complete already: PositionDone at once)
// unless it is the root, which always builds the result object. Every (re-)send bumps the
// position's generation, which names its partial-sum object, and re-sends its parent (its
// child's object changed). Reports (OnReduceReport) of the current generation finish a
// position (PositionDone) or fail it: a failed child pull waits for the child's death (which
// re-plans; should it not die, the deadline's error names the failure), and a node's own
// failure fails the reduce (UNAVAILABLE naming the position, node and error).
// Done when the root is done (AllReduce: and every participant, i.e. every node whose input
// was ready, holds the result, through an embedded BroadcastCollective).
//
// A reduce that cannot finish says why: DATA_LOSS naming the lost inputs as soon as no input
// still expected can fill a vacant position, DEADLINE_EXCEEDED naming the inputs never ready
// (or the positions still reducing), INVALID_ARGUMENT for an input whose size or dtype does not
// match. Pure logic over the Directory and a ClusterView; called under the coordinator's lock.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/collectives/broadcast.h"
#include "control/collectives/collective.h"
#include "control/planner/cost_model.h"
#include "control/planner/reduce_planner.h"

namespace ferry::control {

// Checks what can be checked before any input is known: 1..kMaxReduceInputs distinct inputs
// in result's namespace, distinct from the result; num_objects 0 or 1..inputs; a numeric dtype;
// a known op. INVALID_ARGUMENT naming the problem.
inline constexpr int kMaxReduceInputs = 4096;
[[nodiscard]] absl::Status ValidateReduceRequest(const proto::ReduceRequest& req);

// The key of a position's partial sum on its node (never published; dropped when the reduce
// ends).
std::string ReducePartialKey(OpId op, uint32_t position, uint32_t generation);

class ReduceCollective final : public Collective {
 public:
  // Chunks are at most this big (the nodes' scratch slots are sized for it).
  static constexpr uint32_t kMaxChunk = 1 << 20;
  static constexpr uint32_t kMaxWindow = 4;

  // `req` as validated by ValidateReduceRequest; `all`: AllReduce.
  ReduceCollective(OpId id, proto::ReduceRequest req, bool all, absl::Time start, absl::Time deadline,
                   LinkModel link, PlanLimits limits);

  std::vector<Directory::Key> keys() const override;
  // ALREADY_EXISTS if the result exists; INVALID_ARGUMENT for a published input that does not
  // fit (size, dtype) or two inputs on one node.
  absl::StatusOr<Instructions> Start(CollectiveContext& ctx) override;
  Instructions OnReport(CollectiveContext& ctx, const proto::ReportTransferRequest& report) override;
  Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) override;
  Instructions OnObjectChanged(CollectiveContext& ctx, const Directory::Key& key) override;
  Instructions OnReduceReport(CollectiveContext& ctx, NodeId node, const proto::ReducePositionReport& report) override;
  bool Done(const CollectiveContext& ctx) const override;
  void Conclude(CollectiveContext& ctx, Conclusion why) override;
  absl::Status status() const override { return status_; }

  proto::ReduceReply& reply() { return reply_; }

 private:
  enum class InputState { kWaiting, kReady, kFailed };
  struct Input {
    InputState state = InputState::kWaiting;
    NodeId node = 0;          // the node holding it (once ready)
    std::string why_failed;
  };
  struct Position {
    uint32_t generation = 0;  // 0: never sent
    std::optional<ReducePlanner::Step> step;   // the planner's latest state of it
    bool pending = false;     // to be (re-)sent once its children are placed
    std::string last_error;   // a failed child pull of the current generation
  };

  // The order Start tries the inputs in: those published already rack by rack
  // (control/cluster/locality.h), then the rest.
  std::vector<size_t> StartOrder(const CollectiveContext& ctx) const;
  // Input `i` is published: checks it, then places it. Returns false after failing the op.
  bool TryReady(CollectiveContext& ctx, size_t i);
  void CreatePlanner(const proto::ObjectMeta& meta);
  // The result's metadata from the first ready input (a fresh incarnation).
  void SetResultMeta(const proto::ObjectMeta& input);
  // Small inputs (held inline by the directory): input `i` is combined into inline_result_ here,
  // in ready order, until k are; then SendInline. No tree, no data-plane traffic for the inputs.
  bool InlineReady(CollectiveContext& ctx, size_t i);
  // Files the result as an inline object and pushes it to the root (AllReduce: to every
  // participant) as an explicit broadcast of its bytes; done when they hold it.
  void SendInline(CollectiveContext& ctx);
  void ConcludeInline(CollectiveContext& ctx, Conclusion why);
  // The reply's result metadata and root (id and name).
  void FillResult(const CollectiveContext& ctx);
  // Conclude, before the cleanup of an overlapped broadcast that did not finish.
  void ConcludeResult(CollectiveContext& ctx, Conclusion why);
  // Where the result goes: every live participant (AllReduce), else `root`.
  proto::BroadcastRequest ResultTargets(const CollectiveContext& ctx, NodeId root) const;
  // Starts broadcast_ of the result; fails the operation if it cannot start.
  Instructions StartResultBroadcast(CollectiveContext& ctx, proto::BroadcastRequest breq);
  // k: how many inputs the result combines.
  uint32_t NumUsed() const;
  // "reduce into R did not finish within T ms: ".
  std::string DeadlineHead() const;
  // Takes the planner's steps: leaves done at once, others pending (and their parents).
  void Absorb(const std::vector<ReducePlanner::Step>& steps);
  // Marks the positions above `position` that were sent already for sending again.
  void MarkAncestors(uint32_t position);
  // The pending positions whose children are all placed, as instructions.
  Instructions Flush(CollectiveContext& ctx);
  proto::CoordMessage PositionMessage(const CollectiveContext& ctx, uint32_t position) const;
  proto::ObjectRef PartialRef(uint32_t position) const;
  bool IsLeaf(uint32_t position) const;
  // Fails the operation with `s` (the first error wins).
  void Fail(absl::Status s);
  // DATA_LOSS once no input still expected can fill a vacant position.
  void CheckLoss();
  // INVALID_ARGUMENT once every input is ready or failed and none of them is on the chosen root.
  void CheckRoot();
  // The chosen root node (ReduceRequest.root_node) while the root is held for it; 0 otherwise.
  NodeId ChosenRoot() const;
  // AllReduce, overlapped with the reduce: once every input is placed and the root's position
  // is sent, the result is filed as an object the root is producing (Directory::PublishProducing)
  // and its broadcast starts, so receivers pull each chunk of the result as soon as the root has
  // combined it. Falls back to broadcasting after the root is done if it cannot start.
  Instructions MaybeOverlap(CollectiveContext& ctx);
  // The overlapped broadcast must stop (the root's partial sum is about to be rebuilt, or the
  // reduce failed): the result's entry is deleted (its incarnation remembered as deleted), every
  // copy of it is dropped, and, with `renew`, the result takes a fresh incarnation; the result
  // is then broadcast once the root is done, as without overlap.
  Instructions AbortOverlap(CollectiveContext& ctx, bool renew);
  // The root is done: drops the interior partial sums; AllReduce starts its broadcast.
  Instructions RootDone(CollectiveContext& ctx);
  // Drops for every partial sum sent (and the root's unfinished result with `with_root`), once.
  Instructions DropPartials(CollectiveContext& ctx, bool with_root);
  // `out`, plus DropPartials(with_root) once the operation has failed.
  Instructions DropIfFailed(CollectiveContext& ctx, Instructions out);
  std::string InputNames(const std::vector<NodeId>& ids) const;
  std::optional<size_t> IndexOf(const Directory::Key& key) const;

  const proto::ReduceRequest req_;
  const bool all_;
  const absl::Time start_;
  const absl::Time deadline_;
  const LinkModel link_;
  PlanLimits limits_;
  std::vector<Input> inputs_;
  std::vector<size_t> ready_order_;             // input indices, ready order, before the planner exists
  std::unique_ptr<ReducePlanner> planner_;
  proto::ObjectMeta meta_;                      // the result's (from the first ready input)
  uint32_t chunk_ = 0, window_ = 0;
  std::map<uint32_t, Position> positions_;
  bool root_done_ = false;
  bool dropped_ = false;   // DropPartials ran
  std::unique_ptr<BroadcastCollective> broadcast_;   // AllReduce: overlapped, else after the root is done
  bool overlapped_ = false;      // broadcast_ runs while the root produces the result (MaybeOverlap)
  bool overlap_off_ = false;     // no (further) overlap: it was aborted, or could not start
  NodeId root_node_ = 0;
  bool root_released_ = false;   // the chosen root's node died before its input was placed
  bool inline_ = false;          // the inputs are small: combined by the coordinator (InlineReady)
  bool inline_sent_ = false;
  std::vector<size_t> inline_used_;   // inputs combined, ready order
  std::string inline_result_;
  Instructions inline_out_;      // the result's pushes, for the next Flush
  bool inline_to_requester_ = false;   // a small Reduce's result goes back in the reply (ReduceRequest.requester)
  absl::Status status_;
  proto::ReduceReply reply_;
};

}  // namespace ferry::control
