// Receiver-driven broadcast planning for one object (Hoplite-style, without its limits).
//
// Every copy of the object, complete or partial, may serve at most `fanout` receivers at a
// time. A new receiver is attached to the nearest copy that can serve (by the caller's
// distance, control/cluster/locality.h: the same host, then the same rack, then anywhere),
// among those the one with the shortest chain to a complete copy (ties: fewest receivers
// being served, then lowest node id), and itself becomes a partial
// copy that later receivers may attach to, so a chain (fanout 1) or tree forms as receivers
// arrive. When a receiver completes, its sender's slot is freed and it serves as a complete
// copy, so the tree widens as copies multiply. A receiver whose sender fails keeps its
// partial copy and is re-attached (never below itself, which would deadlock).
//
// Pure logic: no clock, no threads, no I/O. Not thread-safe. Used by ferry-coord and by the
// simulator in perf/sim.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "core/ids.h"

namespace ferry::control {

// How far a candidate sender is from the receiver being attached (0: nearest).
using SenderDistance = std::function<uint32_t(NodeId sender)>;

class BroadcastPlanner {
 public:
  static constexpr uint32_t kUnrooted = std::numeric_limits<uint32_t>::max();

  struct Copy {
    bool complete = false;
    NodeId upstream = 0;     // sender this copy is pulling from (0: none)
    uint32_t depth = 0;      // chain length to a complete copy when attached (kUnrooted if detached)
    uint32_t serving = 0;    // receivers currently attached to this copy
    bool producing = false;  // being produced on this node (not pulled): serves as a source
  };

  explicit BroadcastPlanner(uint32_t fanout) : fanout_(fanout == 0 ? 1 : fanout) {}

  uint32_t fanout() const { return fanout_; }
  void set_fanout(uint32_t fanout) { fanout_ = fanout == 0 ? 1 : fanout; }

  // `node` holds a complete copy (the creator, or a re-report). Idempotent.
  void AddComplete(NodeId node);
  // `node` is receiving a copy from outside the plan (an inline object's bytes travel with
  // the coordinator's reply): it holds an unrooted partial copy that serves no one, so that a
  // Delete reaches it. No-op if the node already has a copy.
  void AddUnplannedPartial(NodeId node);
  // `node` is producing the object itself (an AllReduce's root combining the result): a partial
  // copy at depth 0 that serves receivers as its chunks are made, until Completed(node) makes it
  // complete. No-op if the node already has a copy.
  void AddProducer(NodeId node);
  bool IsProducing(NodeId node) const;

  // Chooses a sender for `receiver`, excluding `exclude`. The receiver becomes (or stays) a
  // partial copy attached to that sender. Errors:
  //   FAILED_PRECONDITION  the receiver already holds a complete copy or is producing it;
  //   NOT_FOUND            no copy other than the receiver's own exists;
  //   UNAVAILABLE          copies exist but none can serve now (all slots busy, excluded,
  //                        or below the receiver): retry when the plan changes.
  // `distance` (optional) says how far each candidate sender is from the receiver; nearer
  // copies win over shorter chains (a chain inside a rack beats one that crosses the spine).
  absl::StatusOr<NodeId> Attach(NodeId receiver, const absl::flat_hash_set<NodeId>& exclude = {},
                                const SenderDistance& distance = nullptr);

  // The receiver holds a complete copy now; its sender's slot is freed.
  void Completed(NodeId receiver);
  // The receiver stopped pulling from its sender. With `keep_partial` its partial copy stays
  // (to be re-attached); otherwise the copy is dropped and its own receivers are detached.
  // Returns the receivers that were attached to a dropped copy.
  std::vector<NodeId> Detach(NodeId receiver, bool keep_partial);
  // `node` died: its copy is dropped. Returns the receivers that were pulling from it.
  std::vector<NodeId> RemoveNode(NodeId node);

  bool HasCopy(NodeId node) const { return copies_.contains(node); }
  bool IsComplete(NodeId node) const;
  size_t complete_copies() const;
  size_t partial_copies() const { return copies_.size() - complete_copies(); }
  bool empty() const { return copies_.empty(); }
  const std::map<NodeId, Copy>& copies() const { return copies_; }
  // Chain depth of a copy's data source (0 complete; kUnrooted if no path to a complete copy).
  uint32_t RootedDepth(NodeId node) const;

 private:
  bool IsBelow(NodeId candidate, NodeId receiver) const;
  void ReleaseSlot(NodeId sender);
  std::vector<NodeId> DropCopy(NodeId node);

  uint32_t fanout_;
  std::map<NodeId, Copy> copies_;   // ordered: deterministic tie-breaking
};

}  // namespace ferry::control
