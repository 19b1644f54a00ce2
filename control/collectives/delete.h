// Delete as a collective: the directory entry goes (its incarnation is remembered as deleted),
// every live holder of a copy, partial ones and receivers of inline bytes included, is told to
// drop it (DropInstruction with the operation id), and the operation is done once each of them
// has answered DropDone{op_id} or died. The Delete call answers then, or after
// CoordinatorOptions::drop_ack_wait (logged): so no Get started after Delete returns can read
// the bytes anywhere.
// Pure logic over the Directory and a ClusterView; called under the coordinator's lock.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/collectives/collective.h"

namespace ferry::control {

// A DropInstruction for `ref`'s `incarnation` (0: any); `op_id` 0 asks for no DropDone.
proto::CoordMessage DropMessage(const proto::ObjectRef& ref, uint64_t incarnation, OpId op_id);

// Bounds of one BatchDropInstruction a batch delete sends a holder (well under gRPC's 4 MiB
// message limit even with the longest names).
inline constexpr size_t kMaxDropsPerMessage = 4096;
inline constexpr size_t kMaxDropMessageBytes = 1 << 20;

class DeleteCollective final : public Collective {
 public:
  DeleteCollective(OpId id, proto::ObjectRef ref);

  std::vector<Directory::Key> keys() const override;
  // NOT_FOUND for an unknown key (nothing sent).
  absl::StatusOr<Instructions> Start(CollectiveContext& ctx) override;
  Instructions OnReport(CollectiveContext&, const proto::ReportTransferRequest&) override { return {}; }
  Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) override;
  Instructions OnNodeAck(CollectiveContext& ctx, NodeId node) override;
  bool Done(const CollectiveContext&) const override { return waiting_.empty(); }
  // Logs the holders that did not confirm (a Delete answers OK regardless).
  void Conclude(CollectiveContext& ctx, Conclusion why) override;

  proto::DeleteReply& reply() { return reply_; }
  const std::set<NodeId>& waiting() const { return waiting_; }

 private:
  const proto::ObjectRef ref_;
  std::set<NodeId> waiting_;   // live holders that have not sent DropDone
  proto::DeleteReply reply_;
};

// A batch of deletes as one operation (DeleteBatch): each entry is deleted as above; an entry
// that cannot be (unknown, lost) gets its own error and the others go on. Each live holder gets
// its drops in order and only the last asks for a DropDone (a node handles its session's
// instructions in order, so that one confirms them all). Done once every holder has confirmed
// or died.
class DeleteBatchCollective final : public Collective {
 public:
  DeleteBatchCollective(OpId id, std::vector<proto::ObjectRef> refs);

  std::vector<Directory::Key> keys() const override;
  // Never fails as a whole: the entries' errors are in reply().errors.
  absl::StatusOr<Instructions> Start(CollectiveContext& ctx) override;
  Instructions OnReport(CollectiveContext&, const proto::ReportTransferRequest&) override { return {}; }
  Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) override;
  Instructions OnNodeAck(CollectiveContext& ctx, NodeId node) override;
  bool Done(const CollectiveContext&) const override { return waiting_.empty(); }
  void Conclude(CollectiveContext& ctx, Conclusion why) override;

  proto::DeleteBatchReply& reply() { return reply_; }

 private:
  const std::vector<proto::ObjectRef> refs_;
  std::set<NodeId> waiting_;   // live holders that have not confirmed their drops
  proto::DeleteBatchReply reply_;
};

}  // namespace ferry::control
