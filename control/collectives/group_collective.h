// A static group's collective (the Group RPC's `collective` verb; proto/group.proto): compiles
// one CollectiveProgram per member (group_programs.h), sends them, and is done once every
// member reported its program done. Every input must be published with a complete copy on its
// member when the call starts (a group's collective runs on data that is there, as NCCL's do;
// the dynamic Reduce / AllReduce are the ones that wait for inputs).
//
// Results: each member seals its own copy and reports it; when the last member reports, the
// coordinator records every copy in the directory at once (TakeResults), so a failed
// collective leaves no result anywhere (ProgramEnd{abort} drops the sealed copies too).
//
// Failure: a member's death (OnNodeDeath; the coordinator revokes the group at the same time)
// or a member's failed report fails the operation at once, naming the member, and every other
// member is told to abort (ProgramEnd{abort}: running steps stop, what they created goes).
// At the deadline the nodes' own deadlines end
// their programs the same way. Success ends with ProgramEnd to every member (scratch dropped).
// Pure logic over the Directory and a ClusterView; called under the coordinator's lock.
#pragma once

#include <string>
#include <vector>

#include "control/collectives/collective.h"
#include "control/collectives/group_programs.h"
#include "proto/group.pb.h"

namespace ferry::control {

// Checks what can be checked without the cluster: kind, op and dtype, the input list, the
// result's name. INVALID_ARGUMENT naming the problem.
[[nodiscard]] absl::Status ValidateGroupCollective(const proto::GroupCollectiveRequest& req, int members);

class GroupCollective final : public Collective {
 public:
  // `group` as it is when the call starts: the group, or why it cannot be used (not found,
  // revoked), which Start answers.
  GroupCollective(OpId id, proto::GroupCollectiveRequest req, absl::StatusOr<proto::GroupInfo> group, absl::Time start,
                  absl::Time deadline);

  std::vector<Directory::Key> keys() const override;
  // The group's error; ValidateGroupCollective's; FAILED_PRECONDITION for an input not sealed
  // on its member, INVALID_ARGUMENT for inputs that differ in size or dtype (or from the
  // request's dtype), ALREADY_EXISTS for an existing result, UNAVAILABLE for a dead member.
  absl::StatusOr<Instructions> Start(CollectiveContext& ctx) override;
  Instructions OnReport(CollectiveContext& ctx, const proto::ReportTransferRequest& report) override { return {}; }
  Instructions OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) override;
  Instructions OnProgramReport(CollectiveContext& ctx, NodeId node, const proto::ProgramReport& report) override;
  bool Done(const CollectiveContext& ctx) const override;
  void Conclude(CollectiveContext& ctx, Conclusion why) override;
  absl::Status status() const override { return status_; }

  // Every member reported its program done and the results wait to be recorded: the caller
  // takes them (member, result), records each in the directory, and calls Recorded with the
  // outcome, which ends the programs (ProgramEnd; with abort if recording failed, which
  // fails the operation). Done only after that.
  bool ResultsPending() const { return status_.ok() && started_ && pending_ == 0 && !ended_; }
  std::vector<std::pair<NodeId, proto::ProgramResult>> TakeResults();
  Instructions Recorded(absl::Status s);

  proto::GroupCollectiveReply& reply() { return reply_; }
  const std::string& group() const { return req_.group(); }

 private:
  int RankOf(NodeId node) const;
  std::string MemberName(int rank) const;
  std::string What() const;
  // Fails the operation with `s` (the first error wins) and tells every member but `except`
  // to abort.
  Instructions Fail(absl::Status s, NodeId except);
  Instructions EndAll(bool abort, NodeId except);
  // Whether `report`'s results are exactly what rank `rank` was to make.
  absl::Status CheckResults(int rank, const proto::ProgramReport& report) const;

  const proto::GroupCollectiveRequest req_;
  const absl::StatusOr<proto::GroupInfo> group_or_;
  const proto::GroupInfo group_;   // group_or_'s value (empty if it has none)
  const absl::Time start_;
  const absl::Time deadline_;
  bool started_ = false;
  std::vector<bool> reported_;   // per rank
  int pending_ = 0;
  bool ended_ = false;           // ProgramEnd sent
  std::vector<proto::ObjectMeta> result_meta_;                     // per rank
  std::vector<std::pair<NodeId, proto::ProgramResult>> results_;   // reported, not yet taken
  absl::Status status_;
  proto::GroupCollectiveReply reply_;
};

}  // namespace ferry::control
