#include "control/collectives/group_collective.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/names.h"

namespace ferry::control {
namespace {

bool Reducing(proto::GroupCollectiveKind kind) {
  return kind == proto::GROUP_ALLREDUCE || kind == proto::GROUP_REDUCE_SCATTER || kind == proto::GROUP_REDUCE;
}

const char* KindName(proto::GroupCollectiveKind kind) {
  switch (kind) {
    case proto::GROUP_ALLREDUCE: return "allreduce";
    case proto::GROUP_REDUCE_SCATTER: return "reduce-scatter";
    case proto::GROUP_ALLGATHER: return "allgather";
    case proto::GROUP_BROADCAST: return "broadcast";
    case proto::GROUP_REDUCE: return "reduce";
    default: return "collective";
  }
}

}  // namespace

absl::Status ValidateGroupCollective(const proto::GroupCollectiveRequest& req, int members) {
  const std::string what = absl::StrCat("group ", KindName(req.kind()), " on '", req.group(), "': ");
  auto bad = [&](const auto&... parts) { return absl::InvalidArgumentError(absl::StrCat(what, parts...)); };
  if (req.kind() <= proto::GROUP_COLLECTIVE_UNSPECIFIED || req.kind() > proto::GROUP_REDUCE) {
    return bad("unknown collective kind ", static_cast<int>(req.kind()));
  }
  if (absl::Status s = ValidateObjectName(req.result().ns(), req.result().key()); !s.ok()) {
    return bad("result: ", s.message());
  }
  const bool rooted = req.kind() == proto::GROUP_BROADCAST || req.kind() == proto::GROUP_REDUCE;
  if (rooted && req.root() >= static_cast<uint32_t>(members)) {
    return bad("root rank ", req.root(), " is out of range (", members, " members)");
  }
  const bool root_only = req.kind() == proto::GROUP_BROADCAST && req.inputs_size() == 1;
  if (req.inputs_size() != members && !root_only) {
    return bad(req.inputs_size(), " inputs for ", members, " members (one per rank, in rank order",
               req.kind() == proto::GROUP_BROADCAST ? ", or the root's alone)" : ")");
  }
  std::set<std::string> keys;
  for (int i = 0; i < req.inputs_size(); ++i) {
    const proto::ObjectRef& in = req.inputs(i);
    const int rank = root_only ? static_cast<int>(req.root()) : i;
    if (req.kind() == proto::GROUP_BROADCAST && rank != static_cast<int>(req.root())) continue;   // ignored
    if (absl::Status s = ValidateObjectName(in.ns(), in.key()); !s.ok()) return bad("input of rank ", rank, ": ", s.message());
    if (in.ns() != req.result().ns()) {
      return bad("input of rank ", rank, " (", RefName(in), ") is not in namespace ", req.result().ns(), " of the result");
    }
    if (in.key() == req.result().key()) return bad("input of rank ", rank, " is the result ", RefName(in));
    if (!keys.insert(in.key()).second) return bad("input ", RefName(in), " is named twice");
  }
  if (Reducing(req.kind())) {
    if (absl::Status s = CheckReduceArithmetic(req.op(), req.dtype()); !s.ok()) return bad(s.message());
  }
  return absl::OkStatus();
}

GroupCollective::GroupCollective(OpId id, proto::GroupCollectiveRequest req, absl::StatusOr<proto::GroupInfo> group,
                                 absl::Time start, absl::Time deadline)
    : Collective(id),
      req_(std::move(req)),
      group_or_(std::move(group)),
      group_(group_or_.ok() ? *group_or_ : proto::GroupInfo()),
      start_(start),
      deadline_(deadline),
      reported_(group_.members_size(), false) {}

std::vector<Directory::Key> GroupCollective::keys() const { return {{req_.result().ns(), req_.result().key()}}; }

int GroupCollective::RankOf(NodeId node) const {
  for (const proto::GroupMember& m : group_.members()) {
    if (m.node_id() == node) return static_cast<int>(m.rank());
  }
  return -1;
}

std::string GroupCollective::MemberName(int rank) const {
  const proto::GroupMember& m = group_.members(rank);
  return absl::StrCat(m.name(), " (rank ", rank, ", node ", m.node_id(), ")");
}

std::string GroupCollective::What() const {
  return absl::StrCat("group ", KindName(req_.kind()), " on '", req_.group(), "'");
}

absl::StatusOr<Instructions> GroupCollective::Start(CollectiveContext& ctx) {
  if (!group_or_.ok()) return group_or_.status();
  const int n = group_.members_size();
  if (absl::Status s = ValidateGroupCollective(req_, n); !s.ok()) return s;
  const std::string what = What() + ": ";
  if (ctx.directory.View(req_.result()).ok()) {
    return absl::AlreadyExistsError(absl::StrCat(what, "the result ", RefName(req_.result()), " exists"));
  }
  GroupProgramSpec spec;
  spec.kind = req_.kind();
  spec.op_id = id();
  spec.result = req_.result();
  spec.op = req_.op();
  spec.dtype = req_.dtype();
  spec.root = req_.root();
  spec.deadline_unix_ms = absl::ToUnixMillis(deadline_);
  spec.result_incarnation = NewIncarnation();
  const bool root_only = req_.kind() == proto::GROUP_BROADCAST && req_.inputs_size() == 1;
  bool have_meta = false;
  for (int r = 0; r < n; ++r) {
    const proto::GroupMember& m = group_.members(r);
    const proto::NodeInfo* info = ctx.cluster.Info(m.node_id());
    if (info == nullptr || !ctx.cluster.Alive(m.node_id())) {
      return absl::UnavailableError(absl::StrCat(what, "member ", MemberName(r), " is not alive"));
    }
    spec.ranks.push_back(GroupRank{m.node_id(), info->dp_address()});
    const bool used = req_.kind() != proto::GROUP_BROADCAST || r == static_cast<int>(req_.root());
    const proto::ObjectRef& in = root_only ? (used ? req_.inputs(0) : req_.result()) : req_.inputs(r);
    spec.inputs.push_back(in);
    if (!used) continue;
    absl::StatusOr<Directory::ObjectView> view = ctx.directory.View(in);
    if (!view.ok() || !ctx.directory.IsComplete(m.node_id(), in)) {
      return absl::FailedPreconditionError(absl::StrCat(what, "input ", RefName(in), " of rank ", r,
                                                        " is not sealed on its member ", MemberName(r),
                                                        view.ok() ? "" : absl::StrCat(": ", view.status().message())));
    }
    const proto::ObjectMeta& meta = view->meta;
    if (Reducing(req_.kind()) && meta.dtype() != req_.dtype()) {
      return absl::InvalidArgumentError(absl::StrCat(what, "input ", RefName(in), " has dtype ",
                                                     DTypeName(static_cast<DType>(meta.dtype())), ", the collective ",
                                                     DTypeName(static_cast<DType>(req_.dtype()))));
    }
    if (!have_meta) {
      spec.input = meta;
      have_meta = true;
    } else if (meta.size() != spec.input.size() || meta.dtype() != spec.input.dtype()) {
      return absl::InvalidArgumentError(absl::StrCat(what, "input ", RefName(in), " has ", meta.size(), " bytes of ",
                                                     DTypeName(static_cast<DType>(meta.dtype())), ", rank 0's ",
                                                     spec.input.size(), " bytes of ",
                                                     DTypeName(static_cast<DType>(spec.input.dtype()))));
    }
  }
  if (!Reducing(req_.kind())) spec.dtype = spec.input.dtype();
  absl::StatusOr<GroupPrograms> compiled = CompileGroupPrograms(spec);
  if (!compiled.ok()) return absl::InvalidArgumentError(absl::StrCat(what, compiled.status().message()));
  result_meta_ = std::move(compiled->result_meta);
  Instructions out;
  for (int r = 0; r < n; ++r) {
    proto::CoordMessage msg;
    *msg.mutable_program() = std::move(compiled->programs[r]);
    out.push_back(MakeInstruction(group_.members(r).node_id(), std::move(msg)));
  }
  pending_ = n;
  started_ = true;
  return out;
}

Instructions GroupCollective::EndAll(bool abort, NodeId except) {
  if (ended_) return {};
  ended_ = true;
  proto::CoordMessage msg;
  msg.mutable_program_end()->set_op_id(id());
  msg.mutable_program_end()->set_abort(abort);
  auto shared = std::make_shared<const proto::CoordMessage>(std::move(msg));
  const size_t bytes = shared->ByteSizeLong();
  Instructions out;
  for (const proto::GroupMember& m : group_.members()) {
    if (m.node_id() != except) out.push_back(Instruction{m.node_id(), shared, bytes});
  }
  return out;
}

Instructions GroupCollective::Fail(absl::Status s, NodeId except) {
  if (status_.ok()) status_ = std::move(s);
  return EndAll(/*abort=*/true, except);
}

Instructions GroupCollective::OnNodeDeath(CollectiveContext& ctx, NodeId node, const std::string& why) {
  const int rank = RankOf(node);
  if (rank < 0 || !status_.ok() || !started_ || pending_ == 0) return {};
  return Fail(absl::UnavailableError(absl::StrCat(What(), " failed: member ", MemberName(rank), " died (", why,
                                                  "); the group is revoked")),
              node);
}

absl::Status GroupCollective::CheckResults(int rank, const proto::ProgramReport& report) const {
  const proto::ObjectMeta& want = result_meta_[rank];
  const int expected = want.size() > 0 ? 1 : 0;
  if (report.results_size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("reported ", report.results_size(), " results, not ", expected));
  }
  if (expected == 0) return absl::OkStatus();
  const proto::ProgramResult& r = report.results(0);
  if (r.ref().ns() != req_.result().ns() || r.ref().key() != req_.result().key() ||
      r.meta().size() != want.size() || r.meta().incarnation() != want.incarnation() ||
      r.meta().dtype() != want.dtype() || (!r.inline_data().empty() && r.inline_data().size() != want.size())) {
    return absl::InvalidArgumentError(absl::StrCat("reported a result (", RefName(r.ref()), ", ", r.meta().size(),
                                                   " bytes) that is not the one it was to make"));
  }
  return absl::OkStatus();
}

Instructions GroupCollective::OnProgramReport(CollectiveContext& ctx, NodeId node, const proto::ProgramReport& report) {
  const int rank = RankOf(node);
  if (rank < 0 || !started_ || reported_[rank] || !status_.ok()) return {};
  reported_[rank] = true;
  --pending_;
  if (!report.ok()) {
    std::string peer;
    if (const int p = RankOf(report.failed_peer()); p >= 0) peer = absl::StrCat(" (pulling from ", MemberName(p), ")");
    return Fail(absl::AbortedError(absl::StrCat(What(), " failed on member ", MemberName(rank), peer, ": ",
                                                report.error())),
                0);
  }
  if (absl::Status s = CheckResults(rank, report); !s.ok()) {
    return Fail(absl::InternalError(absl::StrCat(What(), ": member ", MemberName(rank), " ", s.message())), 0);
  }
  for (const proto::ProgramResult& r : report.results()) results_.emplace_back(node, r);
  return {};   // the last report: the caller records the results, then Recorded ends it
}

std::vector<std::pair<NodeId, proto::ProgramResult>> GroupCollective::TakeResults() {
  if (!ResultsPending()) return {};
  return std::exchange(results_, {});
}

Instructions GroupCollective::Recorded(absl::Status s) {
  if (!s.ok() && status_.ok()) {
    status_ = absl::Status(s.code(), absl::StrCat(What(), ": recording its result: ", s.message()));
  }
  return EndAll(/*abort=*/!s.ok(), 0);
}

bool GroupCollective::Done(const CollectiveContext& ctx) const { return !status_.ok() || (started_ && pending_ == 0 && ended_); }

void GroupCollective::Conclude(CollectiveContext& ctx, Conclusion why) {
  *reply_.mutable_result() = req_.result();
  reply_.set_op_id(id());
  reply_.set_seconds(absl::ToDoubleSeconds(ctx.now - start_));
  if (!status_.ok()) return;
  if (pending_ > 0) {
    if (why == Conclusion::kCancelled) {
      status_ = absl::CancelledError("the caller cancelled the group collective");
    } else if (why == Conclusion::kShutdown) {
      status_ = absl::UnavailableError("coordinator shutting down");
    } else {
      std::string waiting;
      for (int r = 0; r < group_.members_size(); ++r) {
        if (!reported_[r]) absl::StrAppend(&waiting, waiting.empty() ? "" : ", ", MemberName(r));
      }
      status_ = absl::DeadlineExceededError(
          absl::StrCat(What(), " did not finish within its deadline; still running on ", waiting));
    }
    return;
  }
  for (int r = 0; r < group_.members_size(); ++r) {
    if (result_meta_[r].size() == 0) continue;
    if (reply_.holders().empty()) *reply_.mutable_meta() = result_meta_[r];
    reply_.add_holders(group_.members(r).node_id());
    reply_.add_holder_names(group_.members(r).name());
  }
}

}  // namespace ferry::control
