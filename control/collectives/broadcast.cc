#include "control/collectives/broadcast.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/cluster/locality.h"

namespace ferry::control {

void FillSourceReply(const ClusterView& cluster, AcquireResult r, proto::AcquireSourceReply* reply) {
  *reply->mutable_meta() = std::move(r.meta);
  reply->set_chunk_size(r.chunk_size);
  reply->set_window(r.window);
  if (r.receiver_has_copy) {
    reply->set_receiver_has_copy(true);
    return;
  }
  if (r.is_inline) {
    reply->set_is_inline(true);
    reply->set_inline_data(std::move(r.inline_data));
    return;
  }
  reply->set_sender(r.sender);
  reply->set_sender_complete(r.sender_complete);
  if (const proto::NodeInfo* info = cluster.Info(r.sender); info != nullptr) {
    reply->set_sender_address(info->dp_address());
  }
}

SenderDistance DistanceFrom(const ClusterView& cluster, NodeId receiver) {
  const proto::NodeInfo* to = cluster.Info(receiver);
  // Without labels the receiver is its own host in no rack: every sender is as far as the next,
  // and Attach keeps its label-free (and lookup-free) rule.
  if (to == nullptr || !HasTopologyLabels(*to)) return nullptr;
  return [&cluster, to](NodeId sender) { return LocalityDistance(to, cluster.Info(sender)); };
}

absl::Status AttachReceiver(CollectiveContext& ctx, NodeId receiver, const proto::ObjectRef& ref,
                            const absl::flat_hash_set<NodeId>& exclude, proto::AcquireSourceReply* reply) {
  if (!ctx.cluster.Alive(receiver)) {
    return absl::FailedPreconditionError(absl::StrCat("receiver node ", receiver, " is not registered"));
  }
  absl::StatusOr<AcquireResult> r = ctx.directory.Acquire(receiver, ref, exclude, DistanceFrom(ctx.cluster, receiver));
  if (!r.ok()) return r.status();
  FillSourceReply(ctx.cluster, *std::move(r), reply);
  return absl::OkStatus();
}

absl::StatusOr<bool> ApplyReport(Directory& directory, const proto::ReportTransferRequest& report) {
  switch (report.outcome()) {
    case proto::ReportTransferRequest::COMPLETED:
      return directory.Completed(report.node_id(), report.ref(), report.incarnation());
    case proto::ReportTransferRequest::SENDER_FAILED:
      directory.SenderFailed(report.node_id(), report.ref(), report.incarnation());
      return true;
    case proto::ReportTransferRequest::ABORTED:
      directory.Aborted(report.node_id(), report.ref(), report.incarnation());
      return true;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown transfer outcome ", report.outcome()));
  }
}

absl::StatusOr<std::vector<NodeId>> BroadcastTargets(const ClusterView& cluster,
                                                     const google::protobuf::RepeatedField<uint64_t>& node_ids) {
  if (node_ids.empty()) return cluster.LiveNodes();
  std::vector<NodeId> out;
  for (NodeId id : node_ids) {
    if (cluster.Info(id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("broadcast target node ", id, " is not registered"));
    }
    out.push_back(id);
  }
  return out;
}

BroadcastCollective::BroadcastCollective(OpId id, proto::BroadcastRequest req, absl::Time start, absl::Time deadline)
    : Collective(id), req_(std::move(req)), start_(start), deadline_(deadline) {}

std::vector<Directory::Key> BroadcastCollective::keys() const { return {Directory::Key(req_.ref().ns(), req_.ref().key())}; }

absl::StatusOr<Instructions> BroadcastCollective::Start(CollectiveContext& ctx) {
  absl::StatusOr<proto::LocateReply> located = ctx.directory.Locate(req_.ref());
  if (!located.ok()) return located.status();
  absl::StatusOr<std::vector<NodeId>> targets = BroadcastTargets(ctx.cluster, req_.node_ids());
  if (!targets.ok()) return targets.status();
  // Rack by rack from the first holder's, so that each rack is entered over the spine once.
  NodeId source = 0;
  for (const proto::CopyInfo& c : located->copies()) {
    if (c.complete()) {
      source = c.node_id();
      break;
    }
  }
  targets_ = OrderByLocality(*targets, source, [&ctx](NodeId n) { return ctx.cluster.Info(n); });
  proto::CoordMessage msg;
  proto::PullInstruction* pull = msg.mutable_pull();
  *pull->mutable_ref() = req_.ref();
  pull->set_broadcast_id(id());
  pull->set_deadline_unix_ms(absl::ToUnixMillis(deadline_));
  if (const std::string* bytes = ctx.directory.InlineData(req_.ref(), pull->mutable_meta()); bytes != nullptr) {
    pull->set_is_inline(true);
    pull->set_inline_data(*bytes);
  }
  Instructions out;
  Instruction shared;   // an inline object's one message, shared by every target's queue
  for (NodeId id : targets_) {
    if (!ctx.cluster.Alive(id)) {
      failed_.emplace(id, "node is dead");
      continue;
    }
    // A node producing the object (an AllReduce's root) holds it once it has made it.
    if (ctx.directory.IsComplete(id, req_.ref()) || ctx.directory.IsProducing(id, req_.ref())) continue;
    if (msg.pull().is_inline()) {
      PlanPull(ctx, id, msg.mutable_pull());   // records the inline receiver only
      if (shared.msg == nullptr) shared = MakeInstruction(0, msg);
      out.push_back(Instruction{id, shared.msg, shared.bytes});
    } else {
      // A large object's instruction names this target's own sender.
      proto::CoordMessage one = msg;
      PlanPull(ctx, id, one.mutable_pull());
      out.push_back(MakeInstruction(id, std::move(one)));
    }
  }
  return out;
}

void BroadcastCollective::PlanPull(CollectiveContext& ctx, NodeId target, proto::PullInstruction* pull) {
  if (pull->is_inline()) {
    ctx.directory.InlineReceiver(target, req_.ref());   // so that a Delete reaches it
    return;
  }
  if (ctx.directory.HasCopy(target, req_.ref())) return;
  absl::StatusOr<AcquireResult> r = ctx.directory.Acquire(target, req_.ref(), {}, DistanceFrom(ctx.cluster, target));
  if (!r.ok() || r->is_inline) return;
  FillSourceReply(ctx.cluster, *std::move(r), pull->mutable_source());
  if (ctx.attached != nullptr) ++*ctx.attached;
}

Instructions BroadcastCollective::OnReport(CollectiveContext&, const proto::ReportTransferRequest& report) {
  // Completions are read from the directory (Done); a target that gave up has failed.
  if (report.outcome() == proto::ReportTransferRequest::ABORTED) failed_.emplace(report.node_id(), report.detail());
  return {};
}

Instructions BroadcastCollective::OnNodeDeath(CollectiveContext&, NodeId node, const std::string& why) {
  failed_.emplace(node, absl::StrCat("node died: ", why));
  return {};
}

bool BroadcastCollective::Done(const CollectiveContext& ctx) const {
  return std::all_of(targets_.begin(), targets_.end(), [&](NodeId id) {
    return ctx.directory.IsComplete(id, req_.ref()) || failed_.contains(id);
  });
}

void BroadcastCollective::Conclude(CollectiveContext& ctx, Conclusion) {
  reply_.set_broadcast_id(id());
  reply_.set_seconds(absl::ToDoubleSeconds(ctx.now - start_));
  for (NodeId id : targets_) {
    proto::BroadcastResult* r = reply_.add_results();
    r->set_node_id(id);
    if (const proto::NodeInfo* info = ctx.cluster.Info(id); info != nullptr) r->set_node_name(info->name());
    const bool complete = ctx.directory.IsComplete(id, req_.ref());
    r->set_ok(complete || !req_.wait());
    if (!complete && req_.wait()) {
      auto f = failed_.find(id);
      r->set_error(f != failed_.end() ? f->second : "timed out before the copy completed");
    }
  }
}

}  // namespace ferry::control
