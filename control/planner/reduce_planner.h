// Reduce planning for one reduce operation (Hoplite-style, DESIGN.md "Planning collectives").
//
// A reduce combines `num_objects` (k) of `n` candidate inputs, one per node, into the root
// position of a tree whose shape is fixed up front (reduce_shape.h: binary nodes over chains,
// chain length from S / (B*L), positions numbered in post-order). Inputs take positions in the
// order they become ready (InputReady), so a late input never delays earlier ones: each filled
// prefix of the post-order is a set of complete subtrees that reduce while later inputs are
// awaited. With k < n the first k ready inputs are used; later ones are kept as spares.
//
// The planner returns instructions as data (Step: "node N is position p; pull from children
// c1, c2; (re)build your partial sum"). Each position's node combines its children's partial
// sums with its own input, chunk by chunk, and serves the result upward; the caller reports a
// position's partial sum complete with PositionDone. The result is at the root's node when the
// root is done (Done()).
//
// Failures (InputFailed): a failed node's position is re-planned only if its data is still
// needed, i.e. its parent's partial sum is not complete (a failed input whose parent is done is
// already in the result: nothing changes). A needed position is vacated, and:
//   - every placed ancestor on its path to the root must recompute (Step.recompute: drop the
//     partial sum, which may already hold chunks combined from the failed input, and rebuild
//     it); a done ancestor is no longer done;
//   - the earliest-ready spare takes the position; with none, it waits for the next InputReady
//     (a re-created input);
//   - an ancestor that recomputes needs its children's data again, so a failed child of it that
//     had counted as already consumed is vacated in turn (its input leaves the result).
// The planner does not know which chunks an ancestor has combined, so it recomputes the whole
// path (conservative; correct whatever mix of inputs the partial sums held).
//
// A chosen root (ReserveRoot): the caller wants the result on one particular input's node (a
// parameter server, a node picked by placement). The root position is then held for that input:
// it takes the root as soon as it is ready (and pulls its children's partial sums as they are
// placed), other inputs fill the other positions, and the root's input is always used. Should it
// fail, the reservation lapses and the root is filled like any other position.
//
// Pure logic: no clock, no threads, no I/O. Not thread-safe. Used by a Reduce collective
// (control/collectives/collective.h) and by the simulator in perf/sim.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/planner/reduce_shape.h"
#include "core/ids.h"

namespace ferry::control {

class ReducePlanner {
 public:
  // One instruction: the full current state of one position. Re-sent whenever it changes.
  struct Step {
    NodeId node = 0;
    uint32_t position = 0;
    NodeId parent = 0;               // node at the parent position; 0: the root, or not placed yet
    std::vector<NodeId> children;    // node at each child position (shape order); 0: vacant
    bool recompute = false;          // drop this position's partial sum and rebuild it
    bool operator==(const Step&) const = default;
  };
  struct Outcome {
    std::vector<NodeId> used;        // inputs in the result (or in it so far), by position
    std::vector<NodeId> lost;        // failed inputs whose data is not in the result
    std::vector<NodeId> not_ready;   // inputs never ready (and not failed)
  };

  // `inputs`: the candidate nodes (n), each distinct and nonzero; `num_objects` (k): how many
  // to reduce, 1 <= k <= n; `chain_length`: from ReduceChainLength. INVALID_ARGUMENT naming the
  // problem otherwise.
  static absl::StatusOr<std::unique_ptr<ReducePlanner>> Create(std::vector<NodeId> inputs, uint32_t num_objects,
                                                               uint32_t chain_length);

  // `node`'s input is ready: it takes the first vacant position (post-order), or becomes a
  // spare when every position is taken. Returns the steps to send: the new position, and its
  // parent if that was already placed (its children changed). NOT_FOUND for a node that is not
  // an input, ALREADY_EXISTS for one already ready. A failed node may become ready again (its
  // input re-created); if its old input is already in the result, nothing changes.
  // `root`: this is the input the root is reserved for (ReserveRoot).
  absl::StatusOr<std::vector<Step>> InputReady(NodeId node, bool root = false);
  // Holds the root position for the input that will be marked `root` by InputReady. Call
  // before the first InputReady. A no-op when another input is the root already.
  void ReserveRoot();
  // Ends the reservation (the chosen root's node died before its input was ready); the root is
  // filled like any other position from now on. Returns the steps to send.
  std::vector<Step> ReleaseRoot();
  // Whether the root position is still held for the chosen root's input.
  bool root_reserved() const { return root_reserved_; }
  // `node` failed (its input and partial sum are gone). Returns the steps to send (see the file
  // comment): recompute orders to ancestors, a spare's new position, parents whose children
  // changed. NOT_FOUND for a node that is not an input; a repeated failure is a no-op.
  absl::StatusOr<std::vector<Step>> InputFailed(NodeId node);
  // `node`'s partial sum (its position's) is complete. NOT_FOUND for a node that is not an
  // input, FAILED_PRECONDITION for one that holds no live position.
  absl::Status PositionDone(NodeId node);

  // The root's partial sum is complete: the result is at root_node().
  bool Done() const;
  NodeId root_node() const { return slots_.back().node; }
  // Inputs whose data is in the result (complete when Done()), in position order.
  std::vector<NodeId> Used() const;
  // The state to report when the operation gives up (deadline, too many failures).
  Outcome GiveUp() const;

  const ReduceShape& shape() const { return shape_; }
  // Node at `position` (0: vacant or out of range).
  NodeId NodeAt(uint32_t position) const;
  // `node`'s position (nullopt: none, or a spare); a failed node whose data is in the result
  // keeps its position.
  std::optional<uint32_t> PositionOf(NodeId node) const;
  // Ready inputs not placed, earliest ready first.
  std::vector<NodeId> spares() const { return {spares_.begin(), spares_.end()}; }
  // Positions not filled by any node.
  uint32_t vacant() const;

 private:
  enum class InputState { kWaiting, kSpare, kPlaced, kFailed };
  struct Input {
    InputState state = InputState::kWaiting;
    uint32_t position = kNoPosition;   // kPlaced, or kFailed with its data still in the result
  };
  struct Slot {
    NodeId node = 0;      // 0: vacant
    bool alive = false;   // false with node != 0: failed, its data consumed by a done parent
    bool done = false;    // partial sum complete
  };
  using StepSet = std::map<uint32_t, bool>;   // position -> recompute; emitted in position order

  ReducePlanner(std::vector<NodeId> inputs, ReduceShape shape);
  // Whether the position's data is still to be combined: it is the root, or its parent's
  // partial sum is not complete.
  bool Needed(uint32_t position) const;
  void Place(NodeId node, uint32_t position, StepSet& steps);
  // Vacates failed positions whose data is needed, ordering their placed ancestors to
  // recompute, until none is left.
  void VacateNeeded(StepSet& steps);
  // Places spares, earliest ready first, in the vacant positions, lowest first.
  void FillVacancies(StepSet& steps);
  std::vector<Step> Emit(const StepSet& steps) const;

  const std::vector<NodeId> order_;   // inputs as given (for reports)
  const ReduceShape shape_;
  std::vector<Slot> slots_;           // by position
  absl::flat_hash_map<NodeId, Input> inputs_;
  std::deque<NodeId> spares_;         // ready order
  std::set<uint32_t> vacant_;         // positions with no node (slots_[p].node == 0)
  bool root_reserved_ = false;        // ReserveRoot, until ReleaseRoot or the root input fails
  NodeId root_input_ = 0;             // the input marked root (0: not ready yet)
};

}  // namespace ferry::control
