// Broadcast, the first collective. Two ways in, one plan (the object's BroadcastPlan in the
// Directory, where each copy serves at most `fanout` receivers):
//   - implicit: a receiver attaches itself (AcquireSource, from a Get): AttachReceiver, then
//     its ReportTransfer updates the plan (ApplyReport);
//   - explicit: the Broadcast RPC, a BroadcastCollective: every target is instructed to pull
//     (PullInstruction with the operation id as broadcast_id), pre-attached in the plan where it
//     has no copy yet, and the operation is done when every target holds a complete copy or
//     has failed (died, or reported ABORTED).
// Pure logic over the Directory and a ClusterView; called under the coordinator's lock.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "control/collectives/collective.h"

namespace ferry::control {

// The AcquireSourceReply for a directory attachment (the sender and its address, or the bytes).
void FillSourceReply(const ClusterView& cluster, AcquireResult r, proto::AcquireSourceReply* reply);

// How far each candidate sender is from `receiver` (control/cluster/locality.h), for
// Directory::Acquire; null (no distance: every sender equally far) when the receiver has no
// host or rack label. Reads `cluster` when called: use it under the same lock.
SenderDistance DistanceFrom(const ClusterView& cluster, NodeId receiver);

// Implicit broadcast: attaches `receiver` to a sender of `ref` (Directory::Acquire) and fills
// `reply`. FAILED_PRECONDITION if the receiver is not alive; NOT_FOUND (unknown key) and
// UNAVAILABLE (every copy busy) mean "wait and try again"; other errors are final.
[[nodiscard]] absl::Status AttachReceiver(CollectiveContext& ctx, NodeId receiver, const proto::ObjectRef& ref,
                                          const absl::flat_hash_set<NodeId>& exclude,
                                          proto::AcquireSourceReply* reply);

// A transfer report's effect on the object's plan. False if the receiver completed a copy of a
// deleted incarnation (the caller tells it to drop that copy). INVALID_ARGUMENT for an unknown
// outcome.
[[nodiscard]] absl::StatusOr<bool> ApplyReport(Directory& directory, const proto::ReportTransferRequest& report);

// The targets of a broadcast: `node_ids`, or every live node if empty. NOT_FOUND "broadcast
// target node N is not registered" for an id the cluster never saw.
absl::StatusOr<std::vector<NodeId>> BroadcastTargets(const ClusterView& cluster,
                                                     const google::protobuf::RepeatedField<uint64_t>& node_ids);

// The explicit broadcast of one object to a set of nodes (the Broadcast RPC).
class BroadcastCollective final : public Collective {
 public:
  // `req` as validated by the service; `start` and `deadline` bound the whole broadcast.
  BroadcastCollective(OpId id, proto::BroadcastRequest req, absl::Time start, absl::Time deadline);

  std::vector<Directory::Key> keys() const override;
  // NOT_FOUND: unknown object or "broadcast target node N is not registered"; DATA_LOSS: lost.
  absl::StatusOr<Instructions> Start(CollectiveContext& ctx) override;
  Instructions OnReport(CollectiveContext& ctx, const proto::ReportTransferRequest& report) override;
  Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) override;
  bool Done(const CollectiveContext& ctx) const override;
  // Fills reply(): one result per target (ok: holds a complete copy, or instructed if !wait).
  void Conclude(CollectiveContext& ctx, Conclusion why) override;

  proto::BroadcastReply& reply() { return reply_; }
  const std::vector<NodeId>& targets() const { return targets_; }

 private:
  // Pre-plans `target`'s pull: attaches it as its AcquireSource would, so it skips that round
  // trip. Only for nodes with no copy yet; anything else is left to AcquireSource.
  void PlanPull(CollectiveContext& ctx, NodeId target, proto::PullInstruction* pull);

  const proto::BroadcastRequest req_;
  const absl::Time start_;
  const absl::Time deadline_;
  std::vector<NodeId> targets_;
  std::map<NodeId, std::string> failed_;   // node -> why (targets and others: deaths are recorded for all)
  proto::BroadcastReply reply_;
};

}  // namespace ferry::control
