#include "control/collectives/delete.h"

#include <map>

#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::control {

proto::CoordMessage DropMessage(const proto::ObjectRef& ref, uint64_t incarnation, OpId op_id) {
  proto::CoordMessage msg;
  proto::DropInstruction* drop = msg.mutable_drop();
  *drop->mutable_ref() = ref;
  drop->set_incarnation(incarnation);
  drop->set_op_id(op_id);
  return msg;
}

DeleteCollective::DeleteCollective(OpId id, proto::ObjectRef ref) : Collective(id), ref_(std::move(ref)) {}

std::vector<Directory::Key> DeleteCollective::keys() const { return {Directory::Key(ref_.ns(), ref_.key())}; }

absl::StatusOr<Instructions> DeleteCollective::Start(CollectiveContext& ctx) {
  absl::StatusOr<Directory::Deleted> deleted = ctx.directory.Delete(ref_);
  if (!deleted.ok()) return deleted.status();
  reply_.set_copies_dropped(static_cast<uint32_t>(deleted->holders.size()));
  Instructions out;
  for (NodeId id : deleted->holders) {
    if (!ctx.cluster.Alive(id)) continue;
    out.push_back(MakeInstruction(id, DropMessage(ref_, deleted->incarnation, this->id())));
    // A holder whose queue overflows when this is sent dies, and OnNodeDeath takes it out.
    waiting_.insert(id);
  }
  return out;
}

Instructions DeleteCollective::OnNodeDeath(CollectiveContext&, NodeId node, const std::string&) {
  waiting_.erase(node);
  return {};
}

Instructions DeleteCollective::OnNodeAck(CollectiveContext&, NodeId node) {
  waiting_.erase(node);
  return {};
}

void DeleteCollective::Conclude(CollectiveContext&, Conclusion why) {
  if (!waiting_.empty()) {
    spdlog::warn("delete of {}: {} holder(s) did not confirm the drop{}", PrintableName(ref_.ns(), ref_.key()),
                 waiting_.size(), why == Conclusion::kDeadline ? " in time" : " before the call ended");
  }
}

DeleteBatchCollective::DeleteBatchCollective(OpId id, std::vector<proto::ObjectRef> refs)
    : Collective(id), refs_(std::move(refs)) {}

std::vector<Directory::Key> DeleteBatchCollective::keys() const {
  std::vector<Directory::Key> out;
  out.reserve(refs_.size());
  for (const proto::ObjectRef& ref : refs_) out.emplace_back(ref.ns(), ref.key());
  return out;
}

absl::StatusOr<Instructions> DeleteBatchCollective::Start(CollectiveContext& ctx) {
  // Per live holder, its drops in order, packed into BatchDropInstructions of bounded size. Only
  // the last message asks for a DropDone: a node handles its session's instructions in order,
  // so that one confirms them all (10,000 entries on 8 holders are 8 to 16 messages and 8
  // confirmations, not 80,000 messages queued ahead of the heartbeats).
  std::map<NodeId, std::vector<proto::CoordMessage>> drops;
  std::map<NodeId, size_t> open_bytes;   // approximate size of the message being filled
  uint32_t dropped = 0;
  for (size_t i = 0; i < refs_.size(); ++i) {
    absl::StatusOr<Directory::Deleted> deleted = ctx.directory.Delete(refs_[i]);
    if (!deleted.ok()) {
      proto::BatchEntryError* e = reply_.add_errors();
      e->set_index(static_cast<uint32_t>(i));
      e->set_code(static_cast<int32_t>(deleted.status().code()));
      e->set_error(std::string(deleted.status().message()));
      continue;
    }
    dropped += static_cast<uint32_t>(deleted->holders.size());
    const size_t entry_bytes = refs_[i].ns().size() + refs_[i].key().size() + 24;
    for (NodeId id : deleted->holders) {
      if (!ctx.cluster.Alive(id)) continue;
      std::vector<proto::CoordMessage>& msgs = drops[id];
      size_t& bytes = open_bytes[id];
      if (msgs.empty() || msgs.back().batch_drop().entries_size() >= static_cast<int>(kMaxDropsPerMessage) ||
          bytes + entry_bytes > kMaxDropMessageBytes) {
        msgs.emplace_back().mutable_batch_drop();
        bytes = 0;
      }
      proto::DropEntry* e = msgs.back().mutable_batch_drop()->add_entries();
      *e->mutable_ref() = refs_[i];
      e->set_incarnation(deleted->incarnation);
      bytes += entry_bytes;
    }
  }
  reply_.set_copies_dropped(dropped);
  Instructions out;
  for (auto& [node, msgs] : drops) {
    msgs.back().mutable_batch_drop()->set_op_id(this->id());
    for (proto::CoordMessage& m : msgs) out.push_back(MakeInstruction(node, std::move(m)));
    waiting_.insert(node);
  }
  return out;
}

Instructions DeleteBatchCollective::OnNodeDeath(CollectiveContext&, NodeId node, const std::string&) {
  waiting_.erase(node);
  return {};
}

Instructions DeleteBatchCollective::OnNodeAck(CollectiveContext&, NodeId node) {
  waiting_.erase(node);
  return {};
}

void DeleteBatchCollective::Conclude(CollectiveContext&, Conclusion why) {
  if (waiting_.empty()) return;
  spdlog::warn("batch delete of {} object(s): {} holder(s) did not confirm the drops{}", refs_.size(),
               waiting_.size(), why == Conclusion::kDeadline ? " in time" : " before the call ended");
}

}  // namespace ferry::control
