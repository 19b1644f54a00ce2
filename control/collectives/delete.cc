#include "control/collectives/delete.h"

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

}  // namespace ferry::control
