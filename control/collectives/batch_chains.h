// The batch broadcasts in flight, as chains a new batch of the same objects can join.
//
// A receiver that asks for a model version while another batch is moving it (a GetBatch on a
// node that joins late, or a second BroadcastBatch) should not pull from the source again: the
// source's link is already carrying the batch to the first chain. Instead it attaches to the
// newest node receiving the same objects, cut-through, as a receiver joining a single object
// attaches to a partial copy: the chain grows by one and every link still carries the batch
// once. Each batch operation registers, per group, its source, its objects and its targets in
// the order they were attached; a new operation asks for a seed with the same source and the
// same set of objects.
//
// Only newer operations attach to older ones (an operation registers its targets after it has
// planned them, and its planner never learns of newer operations' nodes), so no cycle of
// senders can form. A seed that dies is seen by the joining target as a failed sender; it is
// re-attached within its own operation (to the source).
//
// Pure bookkeeping; called under the coordinator's lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "core/ids.h"

namespace ferry::control {

class InFlightBatches {
 public:
  // The identity of a group of objects: namespace and keys, in any order.
  struct Objects {
    std::string ns;
    std::vector<std::string> keys;   // sorted
    uint64_t hash = 0;
    bool operator==(const Objects& o) const { return hash == o.hash && ns == o.ns && keys == o.keys; }
  };
  static Objects MakeObjects(std::string ns, std::vector<std::string> keys);

  // Operation `op`'s group `group` moves `objects` from `source` to `targets` (attach order).
  void Register(OpId op, size_t group, NodeId source, Objects objects, std::vector<NodeId> targets);
  // The operation ended: its targets are no longer seeds here (those that completed are complete
  // copies in the directory).
  void Unregister(OpId op);

  // The newest target (of the newest operation) moving the same objects from the same source
  // that is alive and not in `exclude`; 0 if none.
  NodeId Seed(NodeId source, const Objects& objects, const absl::flat_hash_set<NodeId>& exclude,
              absl::FunctionRef<bool(NodeId)> alive) const;

  size_t size() const { return chains_.size(); }

 private:
  struct Chain {
    NodeId source = 0;
    Objects objects;
    std::vector<NodeId> targets;
  };
  std::map<std::pair<OpId, size_t>, Chain> chains_;   // (op, group); op ids grow: newest last
};

}  // namespace ferry::control
