// Batch broadcast: many objects (a model version) to a set of nodes as one operation, planned as
// a whole. The batch's objects are grouped by a node that holds them complete (normally one
// group: the trainer put them all); each group is broadcast like one object whose size is the
// group's total: one BroadcastPlanner over the targets (fanout, pack size and window from the
// cost model for the total), and every target gets one BatchPullInstruction per group naming its
// sender and the entries it lacks, in request order. A target's sender may be receiving the
// batch itself; it serves each entry as soon as it has landed (cut-through along the chain).
//
// Per-object bookkeeping stays in the Directory: a target is recorded as an unplanned partial
// copy of each entry (so a Delete reaches it), and each entry it reports complete becomes a
// complete copy there (later Gets may pull from it).
//
// Joining a batch in flight: a group whose objects an older batch is still moving from the same
// source attaches its first targets to that batch's newest target instead of the source (see
// batch_chains.h), so a late receiver extends the chain rather than adding a second stream from
// the source.
//
// Reports (BatchReport on the session stream): completed and failed entries; sender_failed ->
// the target is re-attached to another copy of the group (never below itself) and instructed
// again with what it still lacks; a report naming a sender other than the planned one (an
// instruction that was replaced) only counts its completions. A target that dies has failed;
// the targets it was serving re-attach when they report their sender failed.
//
// Pure logic over the Directory and a ClusterView; called under the coordinator's lock.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/collectives/collective.h"
#include "control/planner/broadcast_planner.h"
#include "control/planner/cost_model.h"

namespace ferry::control {

// Most entries per BatchPullInstruction (an instruction stays far below the session stream's
// 16 MiB message limit); a target lacking more gets several.
inline constexpr size_t kMaxEntriesPerInstruction = 4096;

class BatchBroadcastCollective final : public Collective {
 public:
  // `req` as validated by the service (names, no duplicates, one namespace, size bound).
  BatchBroadcastCollective(OpId id, proto::BroadcastBatchRequest req, absl::Time start, absl::Time deadline,
                           LinkModel link, PlanLimits limits);

  std::vector<Directory::Key> keys() const override;
  // NOT_FOUND: "broadcast target node N is not registered". Entries that do not exist or are
  // lost are per-entry errors (the call still runs for the others).
  absl::StatusOr<Instructions> Start(CollectiveContext& ctx) override;
  Instructions OnReport(CollectiveContext& ctx, const proto::ReportTransferRequest& report) override;
  Instructions OnBatchReport(CollectiveContext& ctx, NodeId node, const proto::BatchReport& report) override;
  Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) override;
  std::vector<Directory::Key> TakeChangedKeys() override { return std::move(changed_); }
  bool Done(const CollectiveContext& ctx) const override;
  void Conclude(CollectiveContext& ctx, Conclusion why) override;

  proto::BroadcastBatchReply& reply() { return reply_; }

 private:
  struct Entry {
    proto::ObjectRef ref;
    proto::ObjectMeta meta;
    uint32_t chunk_size = 0;
  };
  // What one target still lacks of one group, and who it pulls from.
  struct Target {
    NodeId sender = 0;               // 0: not attached (waiting for a free copy)
    std::set<uint32_t> missing;      // entry indices neither completed nor failed
    bool finished = false;           // nothing more expected for this group
    size_t open = 0;                 // instructions from `sender` without a final report yet
  };
  struct Group {
    NodeId source = 0;
    std::vector<uint32_t> entries;   // indices into entries_, request order
    uint64_t bytes = 0;
    BroadcastPlan plan;
    BroadcastPlanner planner{1};
    std::map<NodeId, Target> targets;
    // A node of an older batch in flight receiving the same objects from the same source
    // (batch_chains.h): the first attachments go to it rather than to the source. 0: none.
    NodeId seed = 0;
  };

  // Groups the live entries by a node that holds them complete (the node holding most first).
  void FormGroups(CollectiveContext& ctx);
  // Attaches `node` in group `g` and returns its instructions (none if no copy can serve it
  // now: it waits; or if no copy is left: its entries fail). `initial`: the planning at Start,
  // which keeps a seeded group's targets off its source.
  Instructions Instruct(CollectiveContext& ctx, size_t g, NodeId node, bool initial = false);
  // Seeds each group from a batch in flight (if any), and after planning registers the
  // group's chain for newer batches to join.
  void SeedGroups(CollectiveContext& ctx);
  void RegisterChains(CollectiveContext& ctx);
  InFlightBatches::Objects ObjectsOf(const Group& group) const;
  // Retries the targets waiting for a free copy.
  Instructions RetryWaiting(CollectiveContext& ctx);
  void FailEntry(uint32_t index, NodeId node, absl::Status why);
  void FinishIfEmpty(Group& group, NodeId node, Target& t);
  bool TargetFailed(NodeId node) const { return failed_.contains(node); }

  const proto::BroadcastBatchRequest req_;
  const absl::Time start_;
  const absl::Time deadline_;
  const LinkModel link_;
  const PlanLimits limits_;
  std::vector<Entry> entries_;             // by request index
  std::vector<NodeId> targets_;
  std::vector<Group> groups_;
  std::map<NodeId, std::string> failed_;   // targets that died: why
  // (index, node) -> the entry's error on that node (node 0: on every target).
  std::map<std::pair<uint32_t, NodeId>, absl::Status> entry_errors_;
  std::vector<Directory::Key> changed_;    // see TakeChangedKeys
  size_t unfinished_ = 0;                  // (group, target) pairs not finished yet
  std::map<size_t, std::vector<NodeId>> attach_order_;   // per group: targets as planned at Start
  proto::BroadcastBatchReply reply_;
};

}  // namespace ferry::control
