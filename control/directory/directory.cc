#include "control/directory/directory.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace ferry::control {

std::string RefName(const proto::ObjectRef& ref) { return PrintableName(ref.ns(), ref.key()); }

std::map<Directory::Key, Directory::Entry>::iterator Directory::Find(const proto::ObjectRef& ref) {
  return entries_.find(Key{ref.ns(), ref.key()});
}
std::map<Directory::Key, Directory::Entry>::const_iterator Directory::Find(
    const proto::ObjectRef& ref) const {
  return entries_.find(Key{ref.ns(), ref.key()});
}

absl::Status Directory::Publish(NodeId node, const proto::ObjectRef& ref, const proto::ObjectMeta& meta,
                                std::string inline_data, const LinkModel& link, uint64_t receivers,
                                bool rereport) {
  if (absl::Status s = ValidateObjectName(ref.ns(), ref.key()); !s.ok()) return s;
  if (WasDeleted(ref, meta.incarnation())) {
    return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " (incarnation ", meta.incarnation(),
                                            ") was deleted"));
  }
  auto it = Find(ref);
  if (it != entries_.end() && !it->second.lost) {
    const uint64_t live = it->second.meta.incarnation();
    if (rereport && live != 0 && meta.incarnation() != 0 && live != meta.incarnation()) {
      return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " was deleted and created again: this copy is of "
                                              "incarnation ", meta.incarnation(), ", the live one is ", live));
    }
    if (it->second.meta.size() != meta.size()) {
      return absl::AlreadyExistsError(absl::StrCat("object ", RefName(ref), " already exists with size ",
                                                   it->second.meta.size(), "; this copy has size ", meta.size()));
    }
    if (!rereport && !it->second.planner.HasCopy(node)) {
      return absl::AlreadyExistsError(absl::StrCat("object ", RefName(ref), " already exists in the cluster"));
    }
    it->second.planner.AddComplete(node);
    return absl::OkStatus();
  }
  const bool is_inline = meta.size() <= options_.inline_max_bytes;
  if (is_inline && inline_data.size() != meta.size()) {
    return absl::InvalidArgumentError(absl::StrCat("object ", RefName(ref), " of ", meta.size(),
                                                   " bytes must carry its bytes inline (got ",
                                                   inline_data.size(), ")"));
  }
  Entry& e = NewEntry(ref, meta, is_inline ? std::move(inline_data) : std::string(), is_inline, link, receivers);
  e.planner.AddComplete(node);
  return absl::OkStatus();
}

Directory::Entry& Directory::NewEntry(const proto::ObjectRef& ref, const proto::ObjectMeta& meta,
                                      std::string inline_data, bool is_inline, const LinkModel& link,
                                      uint64_t receivers) {
  Entry e;
  e.meta = meta;
  e.is_inline = is_inline;
  e.inline_data = std::move(inline_data);
  e.plan = PlanBroadcast(meta.size(), receivers, link, options_.limits);
  e.planner.set_fanout(e.plan.fanout);
  Entry& slot = entries_[Key{ref.ns(), ref.key()}];
  slot = std::move(e);
  return slot;
}

absl::Status Directory::PublishProducing(NodeId node, const proto::ObjectRef& ref, const proto::ObjectMeta& meta,
                                         const LinkModel& link, uint64_t receivers, uint32_t chunk_size) {
  if (absl::Status s = ValidateObjectName(ref.ns(), ref.key()); !s.ok()) return s;
  if (WasDeleted(ref, meta.incarnation())) {
    return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " (incarnation ", meta.incarnation(),
                                            ") was deleted"));
  }
  if (Find(ref) != entries_.end()) {
    return absl::AlreadyExistsError(absl::StrCat("object ", RefName(ref), " already exists in the cluster"));
  }
  if (chunk_size == 0) return absl::InvalidArgumentError("a produced object needs a chunk size");
  Entry& e = NewEntry(ref, meta, std::string(), /*is_inline=*/false, link, receivers);
  // Receivers must ask for the chunks the producer tracks; fanout and window for that chunk.
  PlanLimits limits = options_.limits;
  limits.fixed_chunk = chunk_size;
  e.plan = PlanBroadcast(meta.size(), receivers, link, limits);
  e.plan.chunk_size = chunk_size;
  e.planner.set_fanout(e.plan.fanout);
  e.planner.AddProducer(node);
  return absl::OkStatus();
}

absl::Status Directory::CreateInline(const proto::ObjectRef& ref, const proto::ObjectMeta& meta, std::string bytes,
                                     const LinkModel& link, uint64_t receivers) {
  if (absl::Status s = ValidateObjectName(ref.ns(), ref.key()); !s.ok()) return s;
  if (Find(ref) != entries_.end()) {
    return absl::AlreadyExistsError(absl::StrCat("object ", RefName(ref), " already exists in the cluster"));
  }
  if (meta.size() > options_.inline_max_bytes || bytes.size() != meta.size()) {
    return absl::InvalidArgumentError(absl::StrCat("object ", RefName(ref), ": ", bytes.size(), " bytes for a size of ",
                                                   meta.size(), " (inline objects hold at most ",
                                                   options_.inline_max_bytes, ")"));
  }
  NewEntry(ref, meta, std::move(bytes), /*is_inline=*/true, link, receivers);
  return absl::OkStatus();
}

void Directory::Unpublish(NodeId node, const std::string& node_name, const proto::ObjectRef& ref, bool evicted) {
  auto it = Find(ref);
  if (it == entries_.end() || it->second.lost) return;
  Entry& e = it->second;
  const bool was_complete = e.planner.IsComplete(node);
  e.planner.RemoveNode(node);
  if (e.planner.complete_copies() > 0 || e.is_inline) return;
  if (e.planner.empty() && !(evicted && was_complete)) {
    entries_.erase(it);
    return;
  }
  e.lost = true;
  e.lost_detail = evicted && was_complete
                      ? absl::StrCat("its last complete copy was evicted from node ", node_name, " (id ", node,
                                     ") to make room in its arena")
                      : absl::StrCat("its last complete copy was dropped by node ", node_name, " (id ", node, ")");
}

bool Directory::WasDeleted(const proto::ObjectRef& ref, uint64_t incarnation) const {
  if (incarnation == 0) return false;
  auto it = deleted_.find(Key{ref.ns(), ref.key()});
  return it != deleted_.end() && it->second == incarnation;
}

bool Directory::IsDeletedIncarnation(const proto::ObjectRef& ref, uint64_t incarnation) const {
  if (incarnation == 0) return false;
  if (WasDeleted(ref, incarnation)) return true;
  auto it = Find(ref);
  return it != entries_.end() && IsStale(it->second, incarnation);
}

absl::StatusOr<AcquireResult> Directory::Acquire(NodeId receiver, const proto::ObjectRef& ref,
                                                 const absl::flat_hash_set<NodeId>& exclude,
                                                 const SenderDistance& distance) {
  auto it = Find(ref);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " does not exist"));
  Entry& e = it->second;
  if (e.lost) return absl::DataLossError(absl::StrCat("object ", RefName(ref), " is lost: ", e.lost_detail));
  AcquireResult r;
  r.meta = e.meta;
  r.chunk_size = e.plan.chunk_size;
  r.window = e.plan.window;
  if (e.planner.IsComplete(receiver)) {
    r.receiver_has_copy = true;
    return r;
  }
  if (e.is_inline) {
    r.is_inline = true;
    r.inline_data = e.inline_data;
    e.planner.AddUnplannedPartial(receiver);
    return r;
  }
  absl::StatusOr<NodeId> sender = e.planner.Attach(receiver, exclude, distance);
  if (!sender.ok()) {
    return absl::Status(sender.status().code(), absl::StrCat("object ", RefName(ref), ": ", sender.status().message()));
  }
  r.sender = *sender;
  r.sender_complete = e.planner.IsComplete(*sender);
  return r;
}

bool Directory::Completed(NodeId receiver, const proto::ObjectRef& ref, uint64_t incarnation) {
  auto it = Find(ref);
  // Unknown key: deleted (say so), or not re-reported yet after a coordinator restart (no).
  if (it == entries_.end()) return !WasDeleted(ref, incarnation);
  if (IsStale(it->second, incarnation)) return false;
  if (it->second.lost) return true;
  it->second.planner.Completed(receiver);
  return true;
}

void Directory::InlineReceiver(NodeId receiver, const proto::ObjectRef& ref) {
  auto it = Find(ref);
  if (it != entries_.end() && it->second.is_inline) it->second.planner.AddUnplannedPartial(receiver);
}

void Directory::ExternalReceiver(NodeId receiver, const proto::ObjectRef& ref) {
  auto it = Find(ref);
  if (it != entries_.end() && !it->second.lost) it->second.planner.AddUnplannedPartial(receiver);
}

bool Directory::IsStale(const Entry& e, uint64_t incarnation) {
  const uint64_t live = e.meta.incarnation();
  return incarnation != 0 && live != 0 && live != incarnation;
}

void Directory::SenderFailed(NodeId receiver, const proto::ObjectRef& ref, uint64_t incarnation) {
  auto it = Find(ref);
  if (it == entries_.end() || IsStale(it->second, incarnation)) return;
  it->second.planner.Detach(receiver, /*keep_partial=*/true);
}

void Directory::Aborted(NodeId receiver, const proto::ObjectRef& ref, uint64_t incarnation) {
  auto it = Find(ref);
  if (it == entries_.end() || IsStale(it->second, incarnation)) return;
  it->second.planner.Detach(receiver, /*keep_partial=*/false);
}

std::vector<Directory::Key> Directory::RemoveNode(NodeId node, const std::string& node_name) {
  std::vector<Key> lost;
  for (auto& [key, e] : entries_) {
    if (!e.planner.HasCopy(node)) continue;
    const bool was_complete = e.planner.IsComplete(node);
    e.planner.RemoveNode(node);
    if (was_complete && !e.is_inline && !e.lost && e.planner.complete_copies() == 0) {
      e.lost = true;
      e.lost_detail = absl::StrCat("its last complete copy was on node ", node_name, " (id ", node,
                                   "), which died");
      lost.push_back(key);
    }
  }
  return lost;
}

absl::StatusOr<Directory::Deleted> Directory::Delete(const proto::ObjectRef& ref) {
  auto it = Find(ref);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " does not exist"));
  Deleted d;
  for (const auto& [id, c] : it->second.planner.copies()) d.holders.push_back(id);
  d.incarnation = it->second.meta.incarnation();
  if (d.incarnation != 0) {
    auto [t, inserted] = deleted_.insert_or_assign(it->first, d.incarnation);
    if (inserted) deleted_order_.push_back(it->first);
    while (deleted_order_.size() > kTombstones) {
      deleted_.erase(deleted_order_.front());
      deleted_order_.pop_front();
    }
  }
  entries_.erase(it);
  return d;
}

absl::StatusOr<proto::LocateReply> Directory::Locate(const proto::ObjectRef& ref) const {
  auto it = Find(ref);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " does not exist"));
  if (it->second.lost) return absl::DataLossError(absl::StrCat("object ", RefName(ref), " is lost: ", it->second.lost_detail));
  proto::LocateReply reply;
  *reply.mutable_meta() = it->second.meta;
  reply.set_chunk_size(it->second.plan.chunk_size);
  for (const auto& [id, c] : it->second.planner.copies()) {
    proto::CopyInfo* info = reply.add_copies();
    info->set_node_id(id);
    info->set_complete(c.complete);
    uint32_t depth = it->second.planner.RootedDepth(id);
    info->set_depth(depth == BroadcastPlanner::kUnrooted ? 0xffffffffu : depth);
    info->set_serving(c.serving);
  }
  return reply;
}

absl::StatusOr<Directory::ObjectView> Directory::View(const proto::ObjectRef& ref) const {
  auto it = Find(ref);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("object ", RefName(ref), " does not exist"));
  if (it->second.lost) return absl::DataLossError(absl::StrCat("object ", RefName(ref), " is lost: ", it->second.lost_detail));
  ObjectView view;
  view.meta = it->second.meta;
  view.chunk_size = it->second.plan.chunk_size;
  for (const auto& [id, c] : it->second.planner.copies()) {
    if (c.complete) view.complete.push_back(id);
  }
  return view;
}

std::vector<proto::ListEntry> Directory::List(const std::string& ns, const std::string& prefix,
                                              uint32_t limit) const {
  std::vector<proto::ListEntry> out;
  for (auto it = entries_.lower_bound(Key{ns, prefix}); it != entries_.end(); ++it) {
    if (it->first.first != ns || !absl::StartsWith(it->first.second, prefix)) break;
    if (it->second.lost) continue;
    proto::ListEntry entry;
    entry.mutable_ref()->set_ns(ns);
    entry.mutable_ref()->set_key(it->first.second);
    *entry.mutable_meta() = it->second.meta;
    entry.set_complete_copies(static_cast<uint32_t>(it->second.planner.complete_copies()));
    entry.set_partial_copies(static_cast<uint32_t>(it->second.planner.partial_copies()));
    out.push_back(std::move(entry));
    if (limit > 0 && out.size() >= limit) break;
  }
  return out;
}

const std::string* Directory::InlineData(const proto::ObjectRef& ref, proto::ObjectMeta* meta) const {
  auto it = Find(ref);
  if (it == entries_.end() || !it->second.is_inline || it->second.lost) return nullptr;
  *meta = it->second.meta;
  return &it->second.inline_data;
}

bool Directory::HasCopy(NodeId node, const proto::ObjectRef& ref) const {
  auto it = Find(ref);
  return it != entries_.end() && it->second.planner.HasCopy(node);
}

bool Directory::IsProducing(NodeId node, const proto::ObjectRef& ref) const {
  auto it = Find(ref);
  return it != entries_.end() && it->second.planner.IsProducing(node);
}

bool Directory::IsComplete(NodeId node, const proto::ObjectRef& ref) const {
  auto it = Find(ref);
  if (it == entries_.end()) return false;
  return it->second.planner.IsComplete(node);
}

}  // namespace ferry::control
