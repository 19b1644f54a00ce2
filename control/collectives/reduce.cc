#include "control/collectives/reduce.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/cluster/locality.h"
#include "control/collectives/delete.h"
#include "core/dtype.h"
#include "core/reduce.h"
#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::control {
absl::Status ValidateReduceRequest(const proto::ReduceRequest& req) {
  if (req.inputs().empty()) return absl::InvalidArgumentError("reduce: the input list is empty");
  if (req.inputs_size() > kMaxReduceInputs) {
    return absl::InvalidArgumentError(
        absl::StrCat("reduce: ", req.inputs_size(), " inputs, at most ", kMaxReduceInputs, " are allowed"));
  }
  if (absl::Status s = ValidateObjectName(req.result().ns(), req.result().key()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("reduce: result: ", s.message()));
  }
  absl::flat_hash_set<std::string> keys;
  for (int i = 0; i < req.inputs_size(); ++i) {
    const proto::ObjectRef& in = req.inputs(i);
    if (absl::Status s = ValidateObjectName(in.ns(), in.key()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("reduce: input ", i, ": ", s.message()));
    }
    if (in.ns() != req.result().ns()) {
      return absl::InvalidArgumentError(absl::StrCat("reduce: input ", i, " (", RefName(in), ") is not in namespace ",
                                                     req.result().ns(), " of the result"));
    }
    if (in.key() == req.result().key()) {
      return absl::InvalidArgumentError(absl::StrCat("reduce: input ", i, " is the result ", RefName(in)));
    }
    if (!keys.insert(in.key()).second) {
      return absl::InvalidArgumentError(absl::StrCat("reduce: input ", RefName(in), " is named twice"));
    }
  }
  if (req.num_objects() > static_cast<uint32_t>(req.inputs_size())) {
    return absl::InvalidArgumentError(absl::StrCat("reduce: num_objects ", req.num_objects(), " is out of range: ",
                                                   req.inputs_size(), " inputs (0 means all)"));
  }
  if (absl::Status s = CheckReduceArithmetic(req.op(), req.dtype()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("reduce: ", s.message()));
  }
  return absl::OkStatus();
}

std::string ReducePartialKey(OpId op, uint32_t position, uint32_t generation) {
  return absl::StrCat("_ferry/reduce/", op, "/p", position, ".g", generation);
}

ReduceCollective::ReduceCollective(OpId id, proto::ReduceRequest req, bool all, absl::Time start,
                                   absl::Time deadline, LinkModel link, PlanLimits limits)
    : Collective(id),
      req_(std::move(req)),
      all_(all),
      start_(start),
      deadline_(deadline),
      link_(link),
      limits_(limits),
      inputs_(req_.inputs_size()) {}

std::vector<Directory::Key> ReduceCollective::keys() const {
  std::vector<Directory::Key> out;
  for (const proto::ObjectRef& in : req_.inputs()) out.emplace_back(in.ns(), in.key());
  out.emplace_back(req_.result().ns(), req_.result().key());
  return out;
}

absl::StatusOr<Instructions> ReduceCollective::Start(CollectiveContext& ctx) {
  absl::StatusOr<proto::LocateReply> result = ctx.directory.Locate(req_.result());
  if (result.ok() || result.status().code() == absl::StatusCode::kDataLoss) {
    return absl::AlreadyExistsError(absl::StrCat("reduce: the result ", RefName(req_.result()), " already exists"));
  }
  if (const NodeId root = req_.root_node(); root != 0) {
    if (ctx.cluster.Info(root) == nullptr) {
      return absl::NotFoundError(absl::StrCat("reduce: the chosen root node ", root, " is not registered"));
    }
    if (!ctx.cluster.Alive(root)) {
      return absl::FailedPreconditionError(absl::StrCat("reduce: the chosen root node ", root, " is dead"));
    }
  }
  for (size_t i : StartOrder(ctx)) {
    if (!status_.ok()) break;
    TryReady(ctx, i);
  }
  CheckRoot();
  if (!status_.ok()) return status_;
  return Flush(ctx);
}

std::vector<size_t> ReduceCollective::StartOrder(const CollectiveContext& ctx) const {
  // Inputs published already, by node; the others keep their place after them (TryReady skips
  // what is not published).
  std::vector<size_t> order(inputs_.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<NodeId> nodes;
  std::vector<NodeId> node_of(inputs_.size(), 0);   // 0: not published
  for (size_t i = 0; i < inputs_.size(); ++i) {
    absl::StatusOr<Directory::ObjectView> view = ctx.directory.View(req_.inputs(static_cast<int>(i)));
    if (!view.ok() || view->complete.empty()) continue;
    node_of[i] = view->complete.front();
    nodes.push_back(node_of[i]);
  }
  if (nodes.size() < 2) return order;
  // Consecutive positions form the chains, so inputs placed rack by rack (the chosen root's
  // rack, else the first input's, first) keep each chain inside a rack.
  const NodeId from = req_.root_node() != 0 ? req_.root_node() : nodes.front();
  const std::vector<NodeId> by_rack = OrderByLocality(nodes, from, [&ctx](NodeId n) { return ctx.cluster.Info(n); });
  absl::flat_hash_map<NodeId, size_t> rank;
  for (NodeId n : by_rack) rank.emplace(n, rank.size());
  auto rank_of = [&](size_t i) { return node_of[i] == 0 ? rank.size() : rank.at(node_of[i]); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rank_of(a) < rank_of(b); });
  return order;
}

NodeId ReduceCollective::ChosenRoot() const {
  if (req_.root_node() == 0 || root_released_) return 0;
  return planner_ == nullptr || planner_->root_reserved() ? req_.root_node() : 0;
}

void ReduceCollective::CheckRoot() {
  const NodeId root = ChosenRoot();
  if (root == 0 || !status_.ok()) return;
  for (const Input& in : inputs_) {
    if (in.state == InputState::kWaiting) return;   // it may be on the root
    if (in.state == InputState::kReady && in.node == root) return;
  }
  Fail(absl::InvalidArgumentError(absl::StrCat("reduce into ", RefName(req_.result()), ": the chosen root node ",
                                               root, " holds none of the inputs")));
}

bool ReduceCollective::TryReady(CollectiveContext& ctx, size_t i) {
  const proto::ObjectRef& ref = req_.inputs(static_cast<int>(i));
  absl::StatusOr<Directory::ObjectView> view = ctx.directory.View(ref);
  if (!view.ok() || view->complete.empty()) return true;   // not (yet, or any more) published
  const proto::ObjectMeta& m = view->meta;
  const std::string name = absl::StrCat("reduce: input ", i, " (", RefName(ref), ")");
  const auto dtype = static_cast<DType>(req_.dtype());
  if (m.dtype() != req_.dtype()) {
    Fail(absl::InvalidArgumentError(absl::StrCat(name, " has dtype ", DTypeName(static_cast<DType>(m.dtype())),
                                                 ", the reduce is over ", DTypeName(dtype))));
    return false;
  }
  if (m.size() == 0 || m.size() % DTypeSize(dtype) != 0) {
    Fail(absl::InvalidArgumentError(absl::StrCat(name, " has ", m.size(), " bytes, not a positive multiple of ",
                                                 DTypeName(dtype), "'s ", DTypeSize(dtype), " bytes")));
    return false;
  }
  if (meta_.size() != 0 && m.size() != meta_.size()) {
    Fail(absl::InvalidArgumentError(absl::StrCat(name, " has ", m.size(), " bytes, the inputs before it ",
                                                 meta_.size())));
    return false;
  }
  const NodeId node = view->complete.front();
  for (size_t j = 0; j < inputs_.size(); ++j) {
    if (j != i && inputs_[j].state == InputState::kReady && inputs_[j].node == node) {
      Fail(absl::InvalidArgumentError(absl::StrCat(name, " and input ", j, " (",
                                                   RefName(req_.inputs(static_cast<int>(j))),
                                                   ") are both on node ", node, ": one input per node")));
      return false;
    }
  }
  inputs_[i].state = InputState::kReady;
  inputs_[i].node = node;
  // The first input decides: small ones, held inline by the directory, are combined here.
  if (meta_.size() == 0) {
    proto::ObjectMeta held;
    inline_ = ctx.directory.InlineData(ref, &held) != nullptr;
  }
  if (inline_) return InlineReady(ctx, i);
  if (planner_ == nullptr) CreatePlanner(m);
  if (!status_.ok()) return false;
  absl::StatusOr<std::vector<ReducePlanner::Step>> steps = planner_->InputReady(i + 1, node == ChosenRoot());
  if (!steps.ok()) {
    Fail(steps.status());
    return false;
  }
  Absorb(*steps);
  return true;
}

void ReduceCollective::SetResultMeta(const proto::ObjectMeta& input) {
  meta_.set_size(input.size());
  meta_.set_dtype(req_.dtype());
  meta_.set_count(input.size() / DTypeSize(static_cast<DType>(req_.dtype())));
  meta_.set_incarnation(NewIncarnation());
}

bool ReduceCollective::InlineReady(CollectiveContext& ctx, size_t i) {
  const proto::ObjectRef& ref = req_.inputs(static_cast<int>(i));
  proto::ObjectMeta m;
  const std::string* bytes = ctx.directory.InlineData(ref, &m);
  if (bytes == nullptr) {
    Fail(absl::FailedPreconditionError(absl::StrCat("reduce: input ", i, " (", RefName(ref),
                                                    ") is not held inline like the inputs before it")));
    return false;
  }
  if (meta_.size() == 0) SetResultMeta(m);
  if (inline_sent_) return true;   // a spare: the result is made already
  const uint32_t k = NumUsed();
  const NodeId root = req_.root_node() != 0 && !root_released_ ? req_.root_node() : 0;
  const bool is_root = root != 0 && inputs_[i].node == root;
  const bool root_used = root == 0 || std::any_of(inline_used_.begin(), inline_used_.end(),
                                                  [&](size_t u) { return inputs_[u].node == root; });
  // With a chosen root, its input is always one of the k: the others fill k - 1 places.
  if (!is_root && !root_used && inline_used_.size() + 1 >= k) return true;   // a spare
  if (inline_used_.empty()) {
    inline_result_ = *bytes;
  } else if (absl::Status s = ReduceInto(static_cast<ReduceOp>(req_.op()), static_cast<DType>(req_.dtype()),
                                         inline_result_.data(), bytes->data(), bytes->size());
             !s.ok()) {
    Fail(s);
    return false;
  }
  inline_used_.push_back(i);
  if (inline_used_.size() == k) SendInline(ctx);
  return status_.ok();
}

void ReduceCollective::SendInline(CollectiveContext& ctx) {
  inline_sent_ = true;
  // The root: the chosen one, else the last input combined (as the tree's root is the last
  // position filled); a dead one is passed over for the latest live input.
  NodeId root = 0;
  for (size_t u : inline_used_) {
    const NodeId node = inputs_[u].node;
    if (!ctx.cluster.Alive(node) || (root != 0 && root == req_.root_node())) continue;
    root = node;
  }
  if (root == 0) {
    Fail(absl::UnavailableError(absl::StrCat("reduce into ", RefName(req_.result()),
                                             ": every node whose input was combined has died")));
    return;
  }
  // A Reduce asked by a node holding one of the inputs used, with no root chosen: that node is
  // the root, and the result travels back in the reply (no push, no report to wait for).
  const NodeId requester = req_.requester();
  if (!all_ && req_.root_node() == 0 && requester != 0 && ctx.cluster.Alive(requester) &&
      std::any_of(inline_used_.begin(), inline_used_.end(), [&](size_t u) { return inputs_[u].node == requester; })) {
    root = requester;
    inline_to_requester_ = true;
  }
  root_node_ = root;
  proto::BroadcastRequest breq = ResultTargets(ctx, root);
  if (absl::Status s = ctx.directory.CreateInline(req_.result(), meta_, inline_result_, link_,
                                                  static_cast<uint64_t>(breq.node_ids_size()));
      !s.ok()) {
    Fail(s);
    return;
  }
  if (inline_to_requester_) {
    ctx.directory.InlineReceiver(root, req_.result());   // so that a Delete reaches its copy
    return;
  }
  Instructions pulls = StartResultBroadcast(ctx, std::move(breq));
  inline_out_.insert(inline_out_.end(), pulls.begin(), pulls.end());
}

void ReduceCollective::CreatePlanner(const proto::ObjectMeta& meta) {
  SetResultMeta(meta);
  const uint32_t n = static_cast<uint32_t>(inputs_.size());
  const uint32_t k = NumUsed();
  PlanLimits limits = limits_;
  limits.max_chunk = std::min(limits.max_chunk, kMaxChunk);
  limits.min_chunk = std::min(limits.min_chunk, limits.max_chunk);
  if (limits.fixed_chunk > kMaxChunk) limits.fixed_chunk = kMaxChunk;
  const ReducePlan plan = PlanReduce(meta.size(), k, link_, limits);
  const uint32_t width = static_cast<uint32_t>(DTypeSize(static_cast<DType>(req_.dtype())));
  chunk_ = std::max(width, plan.chunk_size / width * width);
  window_ = std::clamp<uint32_t>(plan.window, 1, kMaxWindow);
  std::vector<NodeId> ids(n);
  for (uint32_t i = 0; i < n; ++i) ids[i] = i + 1;
  absl::StatusOr<std::unique_ptr<ReducePlanner>> p = ReducePlanner::Create(std::move(ids), k, plan.chain_length);
  if (!p.ok()) {
    Fail(p.status());
    return;
  }
  planner_ = *std::move(p);
  if (req_.root_node() != 0 && !root_released_) planner_->ReserveRoot();
}

bool ReduceCollective::IsLeaf(uint32_t position) const {
  return planner_->shape().positions[position].children.empty();
}

void ReduceCollective::Absorb(const std::vector<ReducePlanner::Step>& steps) {
  const ReduceShape& shape = planner_->shape();
  for (const ReducePlanner::Step& step : steps) {
    const uint32_t p = step.position;
    if (IsLeaf(p) && p != shape.root()) {
      // Its partial sum is its input, complete already.
      (void)planner_->PositionDone(step.node);
    } else {
      positions_[p].pending = true;
    }
    MarkAncestors(p);
  }
}

void ReduceCollective::MarkAncestors(uint32_t position) {
  // The parents name this position's object: they are sent again too.
  const ReduceShape& shape = planner_->shape();
  for (uint32_t up = shape.positions[position].parent; up != kNoPosition; up = shape.positions[up].parent) {
    auto it = positions_.find(up);
    if (it == positions_.end() || it->second.generation == 0) break;
    it->second.pending = true;
  }
}

Instructions ReduceCollective::Flush(CollectiveContext& ctx) {
  Instructions out = std::exchange(inline_out_, {});
  if (planner_ == nullptr || !status_.ok()) return out;
  // A re-plan that rebuilds the root's partial sum invalidates what receivers of the overlapped
  // broadcast have pulled: stop it before the root's new generation (with a new incarnation of
  // the result) goes out.
  if (overlapped_ && positions_[planner_->shape().root()].pending) {
    Instructions drops = AbortOverlap(ctx, /*renew=*/true);
    out.insert(out.end(), drops.begin(), drops.end());
  }
  // Ascending positions: children (lower numbers, post-order) get their generation first.
  for (auto& [p, pos] : positions_) {
    if (!pos.pending) continue;
    const NodeId id = planner_->NodeAt(p);
    if (id == 0 || !ctx.cluster.Alive(inputs_[id - 1].node)) continue;
    const std::vector<uint32_t>& children = planner_->shape().positions[p].children;
    if (std::any_of(children.begin(), children.end(), [&](uint32_t c) { return planner_->NodeAt(c) == 0; })) {
      continue;   // sent once the vacant child is filled
    }
    ++pos.generation;
    pos.pending = false;
    pos.last_error.clear();
    out.push_back(MakeInstruction(inputs_[id - 1].node, PositionMessage(ctx, p)));
  }
  Instructions pulls = MaybeOverlap(ctx);
  out.insert(out.end(), pulls.begin(), pulls.end());
  return out;
}

Instructions ReduceCollective::MaybeOverlap(CollectiveContext& ctx) {
  if (!all_ || inline_ || overlapped_ || overlap_off_ || root_done_ || broadcast_ != nullptr || !status_.ok() ||
      planner_->vacant() > 0) {
    return {};
  }
  // The participants are fixed only once no input is still expected.
  if (std::any_of(inputs_.begin(), inputs_.end(), [](const Input& in) { return in.state == InputState::kWaiting; })) {
    return {};
  }
  const uint32_t root = planner_->shape().root();
  auto it = positions_.find(root);
  if (it == positions_.end() || it->second.generation == 0 || it->second.pending) return {};
  const NodeId root_node = inputs_[planner_->NodeAt(root) - 1].node;
  if (!ctx.cluster.Alive(root_node)) return {};
  proto::BroadcastRequest breq = ResultTargets(ctx, root_node);
  const uint64_t receivers = breq.node_ids_size() > 1 ? static_cast<uint64_t>(breq.node_ids_size() - 1) : 1;
  if (absl::Status s = ctx.directory.PublishProducing(root_node, req_.result(), meta_, link_, receivers, chunk_);
      !s.ok()) {
    overlap_off_ = true;   // e.g. the key was taken meanwhile: the root's Publish will say so
    return {};
  }
  overlapped_ = true;
  spdlog::info("allreduce {} into {}: broadcasting the result from node {} while it is combined ({} B, chunk {} B)",
               id(), RefName(req_.result()), root_node, meta_.size(), chunk_);
  return StartResultBroadcast(ctx, std::move(breq));
}

Instructions ReduceCollective::AbortOverlap(CollectiveContext& ctx, bool renew) {
  Instructions out;
  spdlog::info("allreduce {} into {}: stopping the overlapped broadcast ({})", id(), RefName(req_.result()),
               renew ? "the root's partial sum is rebuilt: the result goes out once it is" : "the reduce failed");
  overlapped_ = false;
  overlap_off_ = true;
  broadcast_.reset();
  absl::StatusOr<Directory::Deleted> d = ctx.directory.Delete(req_.result());
  if (d.ok()) {
    // Only that incarnation: the root's rebuilt result (a fresh one) is never touched.
    for (NodeId holder : d->holders) {
      if (ctx.cluster.Alive(holder)) out.push_back(MakeInstruction(holder, DropMessage(req_.result(), d->incarnation, 0)));
    }
  }
  if (renew) meta_.set_incarnation(NewIncarnation());
  return out;
}

proto::ObjectRef ReduceCollective::PartialRef(uint32_t position) const {
  if (position == planner_->shape().root()) return req_.result();
  if (IsLeaf(position)) return req_.inputs(static_cast<int>(planner_->NodeAt(position) - 1));
  proto::ObjectRef ref;
  ref.set_ns(req_.result().ns());
  auto it = positions_.find(position);
  ref.set_key(ReducePartialKey(id(), position, it == positions_.end() ? 0 : it->second.generation));
  return ref;
}

proto::CoordMessage ReduceCollective::PositionMessage(const CollectiveContext& ctx, uint32_t position) const {
  const ReduceShape& shape = planner_->shape();
  const NodeId id = planner_->NodeAt(position);
  proto::CoordMessage msg;
  proto::ReducePosition* r = msg.mutable_reduce();
  r->set_op_id(this->id());
  r->set_position(position);
  r->set_generation(positions_.at(position).generation);
  *r->mutable_input() = req_.inputs(static_cast<int>(id - 1));
  *r->mutable_partial() = PartialRef(position);
  r->set_is_root(position == shape.root());
  const uint32_t up = shape.positions[position].parent;
  if (up != kNoPosition && planner_->NodeAt(up) != 0) r->set_parent(inputs_[planner_->NodeAt(up) - 1].node);
  for (uint32_t c : shape.positions[position].children) {
    proto::ReduceChild* child = r->add_children();
    const NodeId node = inputs_[planner_->NodeAt(c) - 1].node;
    child->set_node(node);
    if (const proto::NodeInfo* info = ctx.cluster.Info(node); info != nullptr) child->set_address(info->dp_address());
    *child->mutable_partial() = PartialRef(c);
  }
  r->set_recompute(positions_.at(position).generation > 1);
  r->set_deadline_unix_ms(absl::ToUnixMillis(deadline_));
  r->set_op(req_.op());
  r->set_dtype(req_.dtype());
  *r->mutable_meta() = meta_;
  r->set_chunk_size(chunk_);
  r->set_window(window_);
  return msg;
}

Instructions ReduceCollective::OnObjectChanged(CollectiveContext& ctx, const Directory::Key& key) {
  std::optional<size_t> i = IndexOf(key);
  if (!i || inputs_[*i].state != InputState::kWaiting || !status_.ok() || root_done_) return {};
  TryReady(ctx, *i);
  CheckRoot();
  return DropIfFailed(ctx, Flush(ctx));
}

Instructions ReduceCollective::OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) {
  Instructions out;
  if (broadcast_ != nullptr) out = broadcast_->OnNodeDeath(ctx, node, why);
  if (planner_ == nullptr && node == req_.root_node()) root_released_ = true;
  if (planner_ == nullptr || root_done_ || !status_.ok()) return out;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].state != InputState::kReady || inputs_[i].node != node) continue;
    inputs_[i].state = InputState::kFailed;
    inputs_[i].why_failed = absl::StrCat("node ", node, " died: ", why);
    absl::StatusOr<std::vector<ReducePlanner::Step>> steps = planner_->InputFailed(i + 1);
    if (steps.ok()) Absorb(*steps);
  }
  if (node == ChosenRoot()) {
    // Its input was not placed yet: the root is chosen as if none had been asked for.
    root_released_ = true;
    Absorb(planner_->ReleaseRoot());
  }
  CheckLoss();
  Instructions more = Flush(ctx);
  out.insert(out.end(), more.begin(), more.end());
  return DropIfFailed(ctx, std::move(out));
}

Instructions ReduceCollective::OnReport(CollectiveContext& ctx, const proto::ReportTransferRequest& report) {
  if (broadcast_ == nullptr) return {};
  // About a copy of an aborted overlapped broadcast's incarnation: not this broadcast's.
  if (report.incarnation() != 0 && report.incarnation() != meta_.incarnation()) return {};
  return broadcast_->OnReport(ctx, report);
}

Instructions ReduceCollective::OnReduceReport(CollectiveContext& ctx, NodeId node,
                                              const proto::ReducePositionReport& report) {
  if (planner_ == nullptr || root_done_ || !status_.ok()) return {};
  auto it = positions_.find(report.position());
  if (it == positions_.end() || it->second.generation != report.generation()) return {};   // stale
  const NodeId id = planner_->NodeAt(report.position());
  if (id == 0 || inputs_[id - 1].node != node) return {};
  if (report.ok()) {
    if (absl::Status s = planner_->PositionDone(id); !s.ok()) return {};
    if (report.position() != planner_->shape().root()) return {};
    root_done_ = true;
    root_node_ = node;
    return RootDone(ctx);
  }
  if (report.failed_child() != 0) {
    // Most likely the child is dying: its death (liveness) re-plans the position. Kept for the
    // deadline's message, should it not die.
    it->second.last_error = absl::StrCat("position ", report.position(), " on node ", node,
                                         " could not pull from child node ", report.failed_child(), ": ",
                                         report.error());
    return {};
  }
  Fail(absl::UnavailableError(absl::StrCat("reduce into ", RefName(req_.result()), ": position ", report.position(),
                                           " on node ", node, " failed: ", report.error())));
  return DropIfFailed(ctx, {});
}

Instructions ReduceCollective::DropPartials(CollectiveContext& ctx, bool with_root) {
  Instructions out;
  if (planner_ == nullptr || dropped_) return out;
  dropped_ = true;
  for (const auto& [p, pos] : positions_) {
    if ((p == planner_->shape().root() && !with_root) || pos.generation == 0) continue;
    const NodeId id = planner_->NodeAt(p);
    if (id == 0 || !ctx.cluster.Alive(inputs_[id - 1].node)) continue;
    out.push_back(MakeInstruction(inputs_[id - 1].node, DropMessage(PartialRef(p), 0, 0)));
  }
  return out;
}

Instructions ReduceCollective::DropIfFailed(CollectiveContext& ctx, Instructions out) {
  if (status_.ok()) return out;
  if (overlapped_ && !root_done_) {
    Instructions drops = AbortOverlap(ctx, /*renew=*/false);
    out.insert(out.end(), drops.begin(), drops.end());
  }
  Instructions drops = DropPartials(ctx, /*with_root=*/true);
  out.insert(out.end(), drops.begin(), drops.end());
  return out;
}

Instructions ReduceCollective::RootDone(CollectiveContext& ctx) {
  Instructions out = DropPartials(ctx, /*with_root=*/false);
  if (!all_ || overlapped_) return out;   // overlapped: the broadcast is under way already
  Instructions pulls = StartResultBroadcast(ctx, ResultTargets(ctx, 0));
  out.insert(out.end(), pulls.begin(), pulls.end());
  return out;
}

proto::BroadcastRequest ReduceCollective::ResultTargets(const CollectiveContext& ctx, NodeId root) const {
  proto::BroadcastRequest breq;
  *breq.mutable_ref() = req_.result();
  breq.set_wait(true);
  if (!all_) {
    breq.add_node_ids(root);
    return breq;
  }
  absl::flat_hash_set<NodeId> seen;
  for (const Input& in : inputs_) {
    if (in.state == InputState::kReady && ctx.cluster.Alive(in.node) && seen.insert(in.node).second) {
      breq.add_node_ids(in.node);
    }
  }
  return breq;
}

Instructions ReduceCollective::StartResultBroadcast(CollectiveContext& ctx, proto::BroadcastRequest breq) {
  broadcast_ = std::make_unique<BroadcastCollective>(id(), std::move(breq), start_, deadline_);
  absl::StatusOr<Instructions> pulls = broadcast_->Start(ctx);
  if (!pulls.ok()) {
    Fail(pulls.status());
    return {};
  }
  return *std::move(pulls);
}

uint32_t ReduceCollective::NumUsed() const {
  return req_.num_objects() == 0 ? static_cast<uint32_t>(inputs_.size()) : req_.num_objects();
}

std::string ReduceCollective::DeadlineHead() const {
  return absl::StrCat("reduce into ", RefName(req_.result()), " did not finish within ", req_.timeout_ms(), " ms: ");
}

void ReduceCollective::CheckLoss() {
  if (planner_ == nullptr || planner_->vacant() == 0 || !planner_->spares().empty()) return;
  if (std::any_of(inputs_.begin(), inputs_.end(), [](const Input& in) { return in.state == InputState::kWaiting; })) {
    return;   // a later input may fill the vacancy
  }
  Fail(absl::DataLossError(absl::StrCat("reduce into ", RefName(req_.result()), " cannot finish: lost input(s) ",
                                        InputNames(planner_->GiveUp().lost), "; no other input is expected")));
}

void ReduceCollective::Fail(absl::Status s) {
  if (status_.ok()) status_ = std::move(s);
}

bool ReduceCollective::Done(const CollectiveContext& ctx) const {
  if (!status_.ok()) return true;
  if (inline_) return inline_to_requester_ || (broadcast_ != nullptr && broadcast_->Done(ctx));
  if (!root_done_) return false;
  return !all_ || (broadcast_ != nullptr && broadcast_->Done(ctx));
}

std::string ReduceCollective::InputNames(const std::vector<NodeId>& ids) const {
  std::vector<std::string> names;
  for (NodeId id : ids) {
    const Input& in = inputs_[id - 1];
    std::string name = RefName(req_.inputs(static_cast<int>(id - 1)));
    if (!in.why_failed.empty()) absl::StrAppend(&name, " (", in.why_failed, ")");
    names.push_back(std::move(name));
  }
  return absl::StrJoin(names, ", ");
}

void ReduceCollective::ConcludeInline(CollectiveContext& ctx, Conclusion why) {
  if (!inline_to_requester_ && broadcast_ == nullptr) {
    std::vector<NodeId> waiting;
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (inputs_[i].state == InputState::kWaiting) waiting.push_back(i + 1);
    }
    return Fail(absl::DeadlineExceededError(absl::StrCat(DeadlineHead(), inline_used_.size(), " input(s) combined, ",
                                                         NumUsed(), " needed; never ready: ", InputNames(waiting))));
  }
  if (broadcast_ != nullptr) {
    broadcast_->Conclude(ctx, why);
    if (!all_) {
      for (const proto::BroadcastResult& r : broadcast_->reply().results()) {
        if (!r.ok()) {
          return Fail(absl::UnavailableError(absl::StrCat("reduce into ", RefName(req_.result()), ": the root node ",
                                                          r.node_id(), " did not store the result: ", r.error())));
        }
      }
    }
  }
  FillResult(ctx);
  for (size_t i : inline_used_) reply_.add_used(static_cast<uint32_t>(i));
  if (inline_to_requester_) {
    reply_.set_store_result(true);
    reply_.set_result_data(inline_result_);
  }
  if (all_ && broadcast_ != nullptr) {
    for (proto::BroadcastResult& r : *broadcast_->reply().mutable_results()) *reply_.add_results() = std::move(r);
  }
}

std::optional<size_t> ReduceCollective::IndexOf(const Directory::Key& key) const {
  if (key.first != req_.result().ns()) return std::nullopt;
  for (int i = 0; i < req_.inputs_size(); ++i) {
    if (req_.inputs(i).key() == key.second) return static_cast<size_t>(i);
  }
  return std::nullopt;
}

void ReduceCollective::FillResult(const CollectiveContext& ctx) {
  *reply_.mutable_meta() = meta_;
  reply_.set_root_node(root_node_);
  if (const proto::NodeInfo* info = ctx.cluster.Info(root_node_); info != nullptr) reply_.set_root_node_name(info->name());
}

void ReduceCollective::Conclude(CollectiveContext& ctx, Conclusion why) {
  ConcludeResult(ctx, why);
  // An overlapped broadcast of a result that was never completed: its entry must not outlive the
  // operation (the nodes drop their copies at the same deadline).
  if (!status_.ok() && overlapped_ && !root_done_) (void)AbortOverlap(ctx, /*renew=*/false);
}

void ReduceCollective::ConcludeResult(CollectiveContext& ctx, Conclusion why) {
  *reply_.mutable_result() = req_.result();
  reply_.set_seconds(absl::ToDoubleSeconds(ctx.now - start_));
  if (!status_.ok()) return;
  if (why == Conclusion::kCancelled) return Fail(absl::CancelledError("the caller cancelled the reduce"));
  if (why == Conclusion::kShutdown) return Fail(absl::UnavailableError("coordinator shutting down"));
  if (inline_) return ConcludeInline(ctx, why);
  if (!root_done_) {
    const std::string head = DeadlineHead();
    if (planner_ == nullptr) return Fail(absl::DeadlineExceededError(absl::StrCat(head, "no input became ready")));
    const ReducePlanner::Outcome out = planner_->GiveUp();
    if (const NodeId root = ChosenRoot(); root != 0 && planner_->NodeAt(planner_->shape().root()) == 0) {
      return Fail(absl::DeadlineExceededError(
          absl::StrCat(head, "no input on the chosen root node ", root, " became ready; never ready: ",
                       InputNames(out.not_ready))));
    }
    if (!out.lost.empty()) return Fail(absl::DataLossError(absl::StrCat(head, "lost input(s) ", InputNames(out.lost))));
    if (!out.not_ready.empty() && planner_->vacant() > 0) {
      return Fail(absl::DeadlineExceededError(
          absl::StrCat(head, planner_->vacant(), " position(s) were still waiting for inputs; never ready: ",
                       InputNames(out.not_ready))));
    }
    std::string last;
    for (const auto& [p, pos] : positions_) {
      if (!pos.last_error.empty()) last = absl::StrCat("; ", pos.last_error);
    }
    return Fail(absl::DeadlineExceededError(absl::StrCat(head, "the tree was still reducing", last)));
  }
  FillResult(ctx);
  for (NodeId id : planner_->Used()) reply_.add_used(static_cast<uint32_t>(id - 1));
  if (broadcast_ != nullptr) {
    broadcast_->Conclude(ctx, why);
    for (proto::BroadcastResult& r : *broadcast_->reply().mutable_results()) *reply_.add_results() = std::move(r);
  }
}

}  // namespace ferry::control
