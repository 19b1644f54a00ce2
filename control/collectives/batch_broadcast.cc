#include "control/collectives/batch_broadcast.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/cluster/locality.h"
#include "control/collectives/broadcast.h"
#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::control {
namespace {

constexpr uint32_t kMinPackBytes = 64 << 10;
constexpr uint32_t kMaxPackBytes = 1 << 20;
// Entry errors listed in one reply at most (the rest are counted in the targets' errors).
constexpr size_t kMaxListedErrors = 10000;

}  // namespace

BatchBroadcastCollective::BatchBroadcastCollective(OpId id, proto::BroadcastBatchRequest req, absl::Time start,
                                                   absl::Time deadline, LinkModel link, PlanLimits limits)
    : Collective(id), req_(std::move(req)), start_(start), deadline_(deadline), link_(link), limits_(limits) {}

std::vector<Directory::Key> BatchBroadcastCollective::keys() const {
  std::vector<Directory::Key> out;
  out.reserve(req_.refs_size());
  for (const proto::ObjectRef& ref : req_.refs()) out.emplace_back(ref.ns(), ref.key());
  return out;
}

void BatchBroadcastCollective::FailEntry(uint32_t index, NodeId node, absl::Status why) {
  entry_errors_.emplace(std::make_pair(index, node), std::move(why));
}

absl::StatusOr<Instructions> BatchBroadcastCollective::Start(CollectiveContext& ctx) {
  absl::StatusOr<std::vector<NodeId>> targets = BroadcastTargets(ctx.cluster, req_.node_ids());
  if (!targets.ok()) return targets.status();
  targets_ = *std::move(targets);
  FormGroups(ctx);
  Instructions out;
  for (NodeId node : targets_) {
    if (!ctx.cluster.Alive(node)) {
      failed_.emplace(node, "node is dead");
      continue;
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& group = groups_[g];
      Target t;
      for (uint32_t i : group.entries) {
        if (!ctx.directory.IsComplete(node, entries_[i].ref)) t.missing.insert(i);
      }
      if (t.missing.empty()) {   // it holds the whole group: another copy to pull from
        group.planner.AddComplete(node);
        continue;
      }
      for (uint32_t i : t.missing) ctx.directory.ExternalReceiver(node, entries_[i].ref);
      group.targets.emplace(node, std::move(t));
      ++unfinished_;
    }
  }
  SeedGroups(ctx);
  for (size_t g = 0; g < groups_.size(); ++g) {
    // Rack by rack from the group's source (control/cluster/locality.h).
    std::vector<NodeId> order;
    for (const auto& [node, t] : groups_[g].targets) order.push_back(node);
    order = OrderByLocality(order, groups_[g].source, [&ctx](NodeId n) { return ctx.cluster.Info(n); });
    for (NodeId node : order) {
      Instructions more = Instruct(ctx, g, node, /*initial=*/true);
      out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    const Group& group = groups_[g];
    spdlog::info("batch {}: group {} of {} entries ({} B) from node {}{} to {} targets: fanout {}, pack {} B, window {}",
                 id(), g, group.entries.size(), group.bytes, group.source,
                 group.seed != 0 ? absl::StrCat(" (joining the batch in flight at node ", group.seed, ")") : "",
                 group.targets.size(), group.plan.fanout, std::clamp(group.plan.chunk_size, kMinPackBytes, kMaxPackBytes),
                 group.plan.window);
  }
  RegisterChains(ctx);
  return out;
}

InFlightBatches::Objects BatchBroadcastCollective::ObjectsOf(const Group& group) const {
  std::vector<std::string> keys;
  keys.reserve(group.entries.size());
  for (uint32_t i : group.entries) keys.push_back(entries_[i].ref.key());
  return InFlightBatches::MakeObjects(req_.refs(0).ns(), std::move(keys));
}

void BatchBroadcastCollective::SeedGroups(CollectiveContext& ctx) {
  if (ctx.batches == nullptr) return;
  absl::flat_hash_set<NodeId> exclude(targets_.begin(), targets_.end());
  for (Group& group : groups_) {
    if (group.targets.empty()) continue;
    exclude.insert(group.source);
    group.seed = ctx.batches->Seed(group.source, ObjectsOf(group), exclude,
                                   [&ctx](NodeId n) { return ctx.cluster.Alive(n); });
    if (group.seed != 0) group.planner.AddComplete(group.seed);   // it serves each entry as it lands
  }
}

void BatchBroadcastCollective::RegisterChains(CollectiveContext& ctx) {
  if (ctx.batches == nullptr) return;
  for (size_t g = 0; g < groups_.size(); ++g) {
    // In attach order: a chain's tail last.
    ctx.batches->Register(id(), g, groups_[g].source, ObjectsOf(groups_[g]), attach_order_[g]);
  }
}

void BatchBroadcastCollective::FormGroups(CollectiveContext& ctx) {
  entries_.resize(req_.refs_size());
  std::vector<std::vector<NodeId>> holders(req_.refs_size());
  std::vector<bool> grouped(req_.refs_size(), true);
  for (int i = 0; i < req_.refs_size(); ++i) {
    entries_[i].ref = req_.refs(i);
    absl::StatusOr<Directory::ObjectView> view = ctx.directory.View(req_.refs(i));
    if (!view.ok()) {
      FailEntry(i, 0, view.status());
      continue;
    }
    entries_[i].meta = std::move(view->meta);
    entries_[i].chunk_size = view->chunk_size;
    for (NodeId n : view->complete) {
      if (ctx.cluster.Alive(n)) holders[i].push_back(n);
    }
    if (holders[i].empty()) {
      FailEntry(i, 0, absl::UnavailableError(absl::StrCat("no live node holds a complete copy of ",
                                                          RefName(req_.refs(i)))));
      continue;
    }
    grouped[i] = false;
  }
  // Greedy: the node holding most ungrouped entries serves them all; repeat.
  for (;;) {
    std::map<NodeId, size_t> count;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (!grouped[i]) for (NodeId n : holders[i]) ++count[n];
    }
    if (count.empty()) break;
    NodeId best = count.begin()->first;
    for (const auto& [n, c] : count) {
      if (c > count[best]) best = n;
    }
    Group group;
    group.source = best;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (grouped[i] || std::find(holders[i].begin(), holders[i].end(), best) == holders[i].end()) continue;
      grouped[i] = true;
      group.entries.push_back(static_cast<uint32_t>(i));
      group.bytes += entries_[i].meta.size();
    }
    const uint64_t receivers = std::max<uint64_t>(targets_.size(), 1);
    group.plan = PlanBroadcast(std::max<uint64_t>(group.bytes, 1), receivers, link_, limits_);
    group.planner.set_fanout(group.plan.fanout);
    group.planner.AddComplete(best);
    groups_.push_back(std::move(group));
  }
}

Instructions BatchBroadcastCollective::Instruct(CollectiveContext& ctx, size_t g, NodeId node, bool initial) {
  Group& group = groups_[g];
  Target& t = group.targets.at(node);
  if (t.finished || t.sender != 0) return {};
  absl::flat_hash_set<NodeId> exclude;
  // A seeded group grows the chain in flight; the source stays a fallback (re-attachment).
  if (initial && group.seed != 0) exclude.insert(group.source);
  const SenderDistance distance = DistanceFrom(ctx.cluster, node);
  absl::StatusOr<NodeId> sender = group.planner.Attach(node, exclude, distance);
  if (!sender.ok() && initial && group.seed != 0) sender = group.planner.Attach(node, {}, distance);
  if (!sender.ok()) {
    if (sender.status().code() == absl::StatusCode::kUnavailable) return {};   // waits for a free copy
    for (uint32_t i : t.missing) {
      FailEntry(i, node, absl::UnavailableError(absl::StrCat("no copy of the batch is left to pull ",
                                                             RefName(entries_[i].ref), " from: ",
                                                             sender.status().message())));
    }
    t.missing.clear();
    FinishIfEmpty(group, node, t);
    return {};
  }
  t.sender = *sender;
  if (initial) attach_order_[g].push_back(node);
  if (ctx.attached != nullptr) ++*ctx.attached;
  const proto::NodeInfo* info = ctx.cluster.Info(t.sender);
  Instructions out;
  proto::CoordMessage msg;
  auto begin_message = [&] {
    msg.Clear();
    proto::BatchPullInstruction* pull = msg.mutable_batch_pull();
    pull->set_op_id(id());
    pull->set_deadline_unix_ms(absl::ToUnixMillis(deadline_));
    pull->set_sender(t.sender);
    if (info != nullptr) pull->set_sender_address(info->dp_address());
    pull->set_window(group.plan.window);
    pull->set_pack_bytes(std::clamp(group.plan.chunk_size, kMinPackBytes, kMaxPackBytes));
  };
  begin_message();
  for (uint32_t i : t.missing) {
    proto::BatchEntry* e = msg.mutable_batch_pull()->add_entries();
    e->set_index(i);
    *e->mutable_ref() = entries_[i].ref;
    *e->mutable_meta() = entries_[i].meta;
    e->set_chunk_size(entries_[i].chunk_size);
    if (static_cast<size_t>(msg.batch_pull().entries_size()) == kMaxEntriesPerInstruction) {
      out.push_back(MakeInstruction(node, std::move(msg)));
      begin_message();
    }
  }
  if (msg.batch_pull().entries_size() > 0) out.push_back(MakeInstruction(node, std::move(msg)));
  t.open = out.size();
  return out;
}

void BatchBroadcastCollective::FinishIfEmpty(Group& group, NodeId node, Target& t) {
  if (t.finished || !t.missing.empty()) return;
  t.finished = true;
  --unfinished_;
  // Its copy of the group is whole (entries that failed on it fail downstream too): it serves
  // the targets still waiting, and its sender's slot is free.
  group.planner.Completed(node);
}

Instructions BatchBroadcastCollective::RetryWaiting(CollectiveContext& ctx) {
  Instructions out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (auto& [node, t] : groups_[g].targets) {
      if (t.finished || t.sender != 0 || TargetFailed(node)) continue;
      Instructions more = Instruct(ctx, g, node);
      out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
  }
  return out;
}

Instructions BatchBroadcastCollective::OnReport(CollectiveContext&, const proto::ReportTransferRequest&) {
  // Entries pulled in chunks report per object too (the Directory has applied it); the batch's
  // own bookkeeping comes with the BatchReport.
  return {};
}

Instructions BatchBroadcastCollective::OnBatchReport(CollectiveContext& ctx, NodeId node,
                                                     const proto::BatchReport& report) {
  if (TargetFailed(node)) return {};
  // The node's share that still lacks entry `index` (null: unknown, duplicate or done).
  auto target_of = [&](uint32_t index) -> Target* {
    if (index >= entries_.size()) return nullptr;
    for (Group& group : groups_) {
      auto it = group.targets.find(node);
      if (it != group.targets.end() && it->second.missing.contains(index)) return &it->second;
    }
    return nullptr;
  };
  for (uint32_t index : report.completed()) {
    Target* t = target_of(index);
    if (t == nullptr) continue;   // duplicate, unknown or already failed
    t->missing.erase(index);
    changed_.emplace_back(entries_[index].ref.ns(), entries_[index].ref.key());
    if (!ctx.directory.Completed(node, entries_[index].ref, entries_[index].meta.incarnation())) {
      FailEntry(index, node, absl::NotFoundError(absl::StrCat("object ", RefName(entries_[index].ref),
                                                              " was deleted during the batch")));
    }
  }
  for (const proto::BatchEntryError& e : report.failed()) {
    Target* t = target_of(e.index());
    if (t == nullptr) continue;
    t->missing.erase(e.index());
    ctx.directory.Aborted(node, entries_[e.index()].ref);
    const auto code = static_cast<absl::StatusCode>(e.code());
    FailEntry(e.index(), node, absl::Status(code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code, e.error()));
  }
  Instructions out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto it = groups_[g].targets.find(node);
    if (it == groups_[g].targets.end()) continue;
    Target& t = it->second;
    if (report.sender_failed() && t.sender == report.sender() && !t.finished && !t.missing.empty()) {
      // Keep what it has; pull the rest from another copy (not the one that failed).
      groups_[g].planner.Detach(node, /*keep_partial=*/true);
      t.sender = 0;
      }
    FinishIfEmpty(groups_[g], node, t);
  }
  if (report.final() && !report.sender_failed()) {
    // One instruction from this sender ended (a final report does not say which: the count of
    // open ones is kept over the groups the sender serves this node in). When none is left,
    // whatever they named and the node did not report is lost to it.
    std::vector<std::pair<Group*, Target*>> served;
    size_t open = 0;
    for (Group& group : groups_) {
      auto it = group.targets.find(node);
      if (it == group.targets.end() || it->second.finished || it->second.sender != report.sender()) continue;
      served.emplace_back(&group, &it->second);
      open += it->second.open;
    }
    for (auto& [group, t] : served) {
      if (t->open > 0) {
        --t->open;
        --open;
        break;
      }
    }
    if (open == 0) {
      for (auto& [group, t] : served) {
        for (uint32_t i : t->missing) {
          FailEntry(i, node, absl::InternalError(absl::StrCat("node ", node, " ended its pull without ",
                                                              RefName(entries_[i].ref),
                                                              report.detail().empty() ? "" : ": ", report.detail())));
        }
        t->missing.clear();
        FinishIfEmpty(*group, node, *t);
      }
    }
  }
  Instructions more = RetryWaiting(ctx);
  out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  return out;
}

Instructions BatchBroadcastCollective::OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) {
  const bool target = std::find(targets_.begin(), targets_.end(), node) != targets_.end();
  if (target && !TargetFailed(node)) failed_.emplace(node, absl::StrCat("node died: ", why));
  for (Group& group : groups_) {
    // Its receivers keep their partial copies and re-attach when they report the failure.
    group.planner.RemoveNode(node);
    auto it = group.targets.find(node);
    if (it != group.targets.end() && !it->second.finished) {
      it->second.finished = true;
      --unfinished_;
    }
  }
  return RetryWaiting(ctx);
}

bool BatchBroadcastCollective::Done(const CollectiveContext&) const { return unfinished_ == 0; }

void BatchBroadcastCollective::Conclude(CollectiveContext& ctx, Conclusion why) {
  if (ctx.batches != nullptr) ctx.batches->Unregister(id());
  reply_.set_batch_id(id());
  reply_.set_seconds(absl::ToDoubleSeconds(ctx.now - start_));
  uint64_t bytes = 0;
  for (const Group& group : groups_) bytes += group.bytes;
  reply_.set_bytes(bytes);
  const bool concluded_early = why != Conclusion::kDone;
  std::map<NodeId, size_t> errors_of;
  for (const auto& [at, status] : entry_errors_) ++errors_of[at.second];
  for (NodeId node : targets_) {
    proto::BroadcastResult* r = reply_.add_results();
    r->set_node_id(node);
    if (const proto::NodeInfo* info = ctx.cluster.Info(node); info != nullptr) r->set_node_name(info->name());
    size_t missing = 0;
    for (const Group& group : groups_) {
      auto it = group.targets.find(node);
      if (it != group.targets.end() && !it->second.finished) missing += it->second.missing.size();
    }
    const size_t failed = errors_of[node] + errors_of[0];
    if (auto f = failed_.find(node); f != failed_.end()) {
      r->set_error(f->second);
    } else if (!req_.wait()) {
      r->set_ok(true);   // instructed; nobody waits for the outcome
      continue;
    } else if (missing > 0 && concluded_early) {
      r->set_error(absl::StrCat("timed out with ", missing, " of ", entries_.size(), " entries still missing"));
    } else if (failed > 0) {
      r->set_error(absl::StrCat(failed, " of ", entries_.size(), " entries failed (see the entry errors)"));
    }
    r->set_ok(r->error().empty());
  }
  for (const auto& [at, status] : entry_errors_) {
    if (static_cast<size_t>(reply_.errors_size()) == kMaxListedErrors) break;
    proto::BatchEntryError* e = reply_.add_errors();
    e->set_index(at.first);
    e->set_node_id(at.second);
    e->set_code(static_cast<int32_t>(status.code()));
    e->set_error(std::string(status.message()));
  }
}

}  // namespace ferry::control
