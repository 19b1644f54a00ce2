#include "dataplane/sidecar/handlers/program_handler.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/names.h"
#include "dataplane/engine/puller.h"
#include "dataplane/engine/reduce_sink.h"
#include "dataplane/store/chunk_progress.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

struct ProgramHandler::Task {
  explicit Task(proto::CollectiveProgram p) : program(std::move(p)) {}
  const proto::CollectiveProgram program;
  std::atomic<bool> cancel{false};     // ProgramEnd{abort} or shutdown: no report
  std::atomic<bool> halt{false};       // cancel, or a step failed: end the pulls
  absl::Notification finished;
  // Written by the run only (before `finished`), read after it.
  std::vector<proto::ObjectRef> created;   // objects this program created, in order
  std::vector<proto::ProgramResult> results;   // the sealed `publish` objects
  bool ok = false;
  bool ended = false;                  // ProgramEnd came (guarded by the handler's mu_)
  bool aborted = false;                // ... with abort: the results go too
};

namespace {

std::string Name(const proto::ObjectRef& ref) { return PrintableName(ref.ns(), ref.key()); }

bool SameRef(const proto::ObjectRef& a, const proto::ObjectRef& b) { return a.ns() == b.ns() && a.key() == b.key(); }

StoredMeta MetaOf(const proto::ObjectMeta& m) {
  return StoredMeta{m.size(), static_cast<uint32_t>(m.dtype()), m.count(), m.incarnation(), false, 0};
}

const proto::ProgramObject* FindObject(const proto::CollectiveProgram& p, const proto::ObjectRef& ref) {
  for (const proto::ProgramObject& o : p.objects()) {
    if (SameRef(o.ref(), ref)) return &o;
  }
  return nullptr;
}

}  // namespace

absl::Status ProgramHandler::Check(const proto::CollectiveProgram& p) {
  const std::string what = absl::StrCat("group collective ", p.op_id(), ": ");
  auto bad = [&](const auto&... parts) { return absl::InvalidArgumentError(absl::StrCat(what, parts...)); };
  if (p.objects_size() == 0 || p.objects_size() > kMaxObjects) return bad(p.objects_size(), " objects (1..", kMaxObjects, ")");
  if (p.steps_size() > kMaxSteps) return bad(p.steps_size(), " steps (at most ", kMaxSteps, ")");
  if (p.peers_size() > kMaxPeers) return bad(p.peers_size(), " peers (at most ", kMaxPeers, ")");
  if (p.window() == 0 || p.window() > kMaxWindow) return bad("window ", p.window(), " (1..", kMaxWindow, ")");
  std::set<uint64_t> peers;
  for (const proto::ProgramPeer& peer : p.peers()) {
    if (peer.node() == 0 || peer.address().empty()) return bad("a peer without a node id or address");
    peers.insert(peer.node());
  }
  std::set<std::pair<std::string, std::string>> names;
  for (const proto::ProgramObject& o : p.objects()) {
    if (absl::Status s = ValidateObjectName(o.ref().ns(), o.ref().key()); !s.ok()) return bad(s.message());
    if (!names.emplace(o.ref().ns(), o.ref().key()).second) return bad("object ", Name(o.ref()), " twice");
    if (o.meta().size() == 0 || o.chunk_size() == 0) return bad("object ", Name(o.ref()), " has no size or chunk size");
    const ChunkProgress shape(o.meta().size(), o.chunk_size());
    if (o.ready_first() > o.ready_end() || o.ready_end() > shape.num_chunks()) {
      return bad("object ", Name(o.ref()), ": ready chunks [", o.ready_first(), ", ", o.ready_end(), ") of ",
                 shape.num_chunks());
    }
    if (o.has_init_from()) {
      if (absl::Status s = ValidateObjectName(o.init_from().ns(), o.init_from().key()); !s.ok()) return bad(s.message());
      if (o.init_len() == 0 || o.init_dst_offset() > o.meta().size() || o.init_len() > o.meta().size() - o.init_dst_offset()) {
        return bad("object ", Name(o.ref()), ": initial bytes do not fit it");
      }
    }
  }
  const auto dtype = static_cast<DType>(p.dtype());
  for (const proto::ProgramStep& s : p.steps()) {
    const proto::ProgramObject* dst = FindObject(p, s.dst());
    if (dst == nullptr) return bad("a step writes ", Name(s.dst()), ", not an object of the program");
    const ChunkProgress shape(dst->meta().size(), dst->chunk_size());
    const uint64_t dst_first = s.kind() == proto::ProgramStep::COPY ? s.dst_first_chunk() : s.first_chunk();
    if (s.first_chunk() >= s.end_chunk() || dst_first + (s.end_chunk() - s.first_chunk()) > shape.num_chunks()) {
      return bad("a step's chunks [", s.first_chunk(), ", ", s.end_chunk(), ") do not fit ", Name(s.dst()), " (",
                 shape.num_chunks(), " chunks)");
    }
    if (absl::Status st = ValidateObjectName(s.src().ns(), s.src().key()); !st.ok()) return bad(st.message());
    switch (s.kind()) {
      case proto::ProgramStep::PULL:
      case proto::ProgramStep::PULL_REDUCE:
        if (!peers.contains(s.peer())) return bad("a step pulls from node ", s.peer(), ", not a peer of the program");
        if (s.src().ns() != s.dst().ns()) return bad("a pull across namespaces");
        if (s.kind() == proto::ProgramStep::PULL_REDUCE) {
          if (!CheckReduceArithmetic(p.op(), p.dtype()).ok()) {
            return bad("no arithmetic for op ", p.op(), " on dtype ", p.dtype());
          }
          const uint64_t width = DTypeSize(dtype);
          if (dst->chunk_size() > kMaxChunk || dst->chunk_size() % width != 0 || dst->meta().size() % width != 0) {
            return bad("object ", Name(s.dst()), ": chunk ", dst->chunk_size(), " / size ", dst->meta().size(),
                       " do not fit dtype ", DTypeName(dtype), " (chunks at most ", kMaxChunk, " to reduce)");
          }
        }
        break;
      case proto::ProgramStep::COPY: {
        const proto::ProgramObject* src = FindObject(p, s.src());
        if (src == nullptr || src == dst) return bad("a copy from ", Name(s.src()), ", not another object of the program");
        const ChunkProgress from(src->meta().size(), src->chunk_size());
        // Chunks before the last of either object are whole: the last chunk of the range
        // decides whether the lengths agree.
        if (src->chunk_size() != dst->chunk_size() || s.end_chunk() > from.num_chunks() ||
            from.ChunkRange(s.end_chunk() - 1).second !=
                shape.ChunkRange(static_cast<uint32_t>(dst_first + s.end_chunk() - 1 - s.first_chunk())).second) {
          return bad("a copy between objects of different chunking");
        }
        break;
      }
      default:
        return bad("unknown step kind ", static_cast<int>(s.kind()));
    }
  }
  for (const proto::ObjectRef& ref : p.publish()) {
    if (FindObject(p, ref) == nullptr) return bad("publishes ", Name(ref), ", not an object of the program");
  }
  return absl::OkStatus();
}

ProgramHandler::ProgramHandler(ReduceDeps deps, std::function<uint64_t()> inline_max)
    : deps_(std::move(deps)), inline_max_(std::move(inline_max)), runs_("group programs", std::max<uint32_t>(deps_.slot_sets, 1)) {
  for (uint32_t i = 0; i < deps_.slot_sets; ++i) free_sets_.push_back(i);
}

ProgramHandler::~ProgramHandler() { Shutdown(); }

void ProgramHandler::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, task] : tasks_) {
      task->cancel.store(true);
      task->halt.store(true);
    }
  }
  runs_.Shutdown();
}

void ProgramHandler::SweepLocked(absl::Time now) {
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    Task& t = *it->second;
    if (t.finished.HasBeenNotified() &&
        (t.ended || now > absl::FromUnixMillis(t.program.deadline_unix_ms()) + kScratchGrace)) {
      // No ProgramEnd: the coordinator gave up on the operation and recorded no result.
      if (!t.ended) DropCreated(t, /*all=*/true);
      it = tasks_.erase(it);
    } else {
      ++it;
    }
  }
}

void ProgramHandler::Handle(const proto::CollectiveProgram& program) {
  auto task = std::make_shared<Task>(program);
  absl::Status refused;
  uint32_t set = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    SweepLocked(absl::Now());
    if (tasks_.contains(program.op_id())) return;   // a repeat
    if (free_sets_.empty()) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("group collective ", program.op_id(), ": ", deps_.slot_sets, " programs already run here"));
    } else {
      set = free_sets_.back();
      free_sets_.pop_back();
      tasks_[program.op_id()] = task;
    }
  }
  if (refused.ok()) {
    refused = runs_.Submit([this, task, set] { Run(task, set); });
    if (!refused.ok()) {
      absl::MutexLock lock(&mu_);
      free_sets_.push_back(set);
      tasks_.erase(program.op_id());
    }
  }
  if (!refused.ok()) {
    spdlog::warn("{}", std::string(refused.message()));
    Report(program, refused, 0, {});
  }
}

void ProgramHandler::End(const proto::ProgramEnd& end) {
  std::shared_ptr<Task> task;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(end.op_id());
    if (it == tasks_.end()) return;
    task = it->second;
    task->ended = true;
    task->aborted = end.abort();
    if (end.abort()) {
      task->cancel.store(true);
      task->halt.store(true);
    }
    if (!task->finished.HasBeenNotified()) return;   // the run drops what it must when it ends
    tasks_.erase(it);
  }
  DropCreated(*task, /*all=*/end.abort());
}

void ProgramHandler::Run(const std::shared_ptr<Task>& task, uint32_t set) {
  const absl::Time start = absl::Now();
  uint64_t failed_peer = 0;
  absl::Status s = Check(task->program);
  if (s.ok()) s = Execute(*task, set, &failed_peer);
  {
    absl::MutexLock lock(&mu_);
    free_sets_.push_back(set);
  }
  task->ok = s.ok();
  if (s.ok()) {
    spdlog::debug("group collective {}: {} steps in {:.3f} ms", task->program.op_id(), task->program.steps_size(),
                  absl::ToDoubleMilliseconds(absl::Now() - start));
  } else {
    if (!task->cancel.load()) {
      spdlog::warn("group collective {} failed: {}", task->program.op_id(), std::string(s.message()));
    }
    DropCreated(*task, /*all=*/true);
  }
  if (!task->cancel.load()) Report(task->program, s, failed_peer, task->results);
  bool ended;
  bool aborted;
  {
    absl::MutexLock lock(&mu_);
    task->finished.Notify();
    ended = task->ended;
    aborted = task->aborted;
    if (ended) tasks_.erase(task->program.op_id());
  }
  if (ended && s.ok()) DropCreated(*task, /*all=*/aborted);
}

absl::Status ProgramHandler::Execute(Task& task, uint32_t set, uint64_t* failed_peer) {
  const proto::CollectiveProgram& p = task.program;
  ObjectStore& store = *deps_.store;
  for (const proto::ProgramPeer& peer : p.peers()) {
    if (absl::Status s = deps_.fetcher->EnsurePeer(peer.node(), peer.address()); !s.ok()) {
      *failed_peer = peer.node();
      return absl::UnavailableError(absl::StrCat("group peer node ", peer.node(), ": ", s.message()));
    }
  }
  auto* base = static_cast<uint8_t*>(deps_.arena.base);
  for (const proto::ProgramObject& o : p.objects()) {
    const std::string& ns = o.ref().ns();
    const std::string& key = o.ref().key();
    if (store.Contains(ns, key)) {
      return absl::AlreadyExistsError(absl::StrCat(Name(o.ref()), " exists on this node already"));
    }
    absl::StatusOr<uint64_t> offset = store.CreateReceiving(ns, key, MetaOf(o.meta()), o.chunk_size());
    if (!offset.ok()) {
      return absl::Status(offset.status().code(),
                          absl::StrCat("creating ", Name(o.ref()), ": ", offset.status().message()));
    }
    task.created.push_back(o.ref());
    if (o.has_init_from()) {
      absl::StatusOr<PinnedObject> in = store.PinSealed(o.init_from().ns(), o.init_from().key(), kInternalSession);
      if (!in.ok()) {
        return absl::FailedPreconditionError(absl::StrCat("group collective input ", Name(o.init_from()),
                                                          " is not sealed on this node: ", in.status().message()));
      }
      const bool fits = o.init_src_offset() <= in->meta.size && o.init_len() <= in->meta.size - o.init_src_offset();
      if (fits) std::memcpy(base + *offset + o.init_dst_offset(), base + in->offset + o.init_src_offset(), o.init_len());
      const uint64_t have = in->meta.size;
      store.Unpin(*in);
      if (!fits) {
        return absl::FailedPreconditionError(absl::StrCat("group collective input ", Name(o.init_from()), " has ",
                                                          have, " bytes, fewer than the collective reads"));
      }
    }
    for (uint32_t k = o.ready_first(); k < o.ready_end(); ++k) store.MarkChunk(ns, key, k);
  }
  // Consecutive pulls overlap: a pull step starts once the one before it has requested all of
  // its chunks (PullSpec::on_all_issued), so the link does not idle for a request's round trip
  // at every step boundary (on a loaded link that trip queues behind this node's own outgoing
  // data) while the steps never compete for it. Two run at once, each with half of the set's
  // staging slots. Their chunks are disjoint (the compiler's programs write each chunk once)
  // and each waits only on the predecessor's earlier steps, so overlapping cannot deadlock. A
  // copy waits for every pull before it.
  const bool overlap = p.window() <= kMaxWindow / 2;
  struct Background {
    std::thread thread;
    absl::Status status;
    uint64_t peer = 0;
    absl::Notification issued;
    std::atomic<bool> told{false};
    void Tell() {
      if (!told.exchange(true)) issued.Notify();
    }
  };
  std::deque<std::unique_ptr<Background>> running;   // oldest first, at most two
  absl::Status first_error;
  auto join_oldest = [&] {
    Background& b = *running.front();
    b.thread.join();
    if (!b.status.ok() && first_error.ok()) {
      first_error = b.status;
      *failed_peer = b.peer;
    }
    running.pop_front();
  };
  auto join_all = [&] {
    while (!running.empty()) join_oldest();
  };
  int half = 0;
  for (const proto::ProgramStep& step : p.steps()) {
    if (task.halt.load()) {
      join_all();   // a step's own error, if that is why
      if (first_error.ok()) first_error = absl::CancelledError("group collective aborted");
    }
    if (!first_error.ok()) break;
    const uint64_t slots = uint64_t{set} * kSetBytes + (overlap ? uint64_t(half) * (kSetBytes / 2) : 0);
    if (step.kind() == proto::ProgramStep::COPY || !overlap) {
      join_all();
      if (!first_error.ok()) break;
      if (absl::Status s = RunStep(task, step, slots, nullptr); !s.ok()) {
        if (step.kind() != proto::ProgramStep::COPY) *failed_peer = step.peer();
        first_error = s;
      }
      continue;
    }
    if (!running.empty()) running.back()->issued.WaitForNotification();
    if (running.size() == 2) join_oldest();   // frees the slots this step takes
    if (!first_error.ok()) break;
    auto next = std::make_unique<Background>();
    next->peer = step.peer();
    Background* b = next.get();
    next->thread = std::thread([this, &task, &step, slots, b] {
      b->status = RunStep(task, step, slots, [b] { b->Tell(); });
      b->Tell();
      if (!b->status.ok()) task.halt.store(true);
    });
    running.push_back(std::move(next));
    half ^= 1;
  }
  join_all();
  if (!first_error.ok()) return first_error;
  const uint64_t inline_max = inline_max_();
  for (const proto::ObjectRef& ref : p.publish()) {
    if (absl::Status s = store.FinishReceiving(ref.ns(), ref.key()); !s.ok()) {
      return absl::InternalError(absl::StrCat("group collective result ", Name(ref), " is incomplete: ", s.message()));
    }
    const proto::ProgramObject& o = *FindObject(p, ref);
    proto::ProgramResult& r = task.results.emplace_back();
    *r.mutable_ref() = ref;
    *r.mutable_meta() = o.meta();
    if (o.meta().size() <= inline_max) {
      absl::StatusOr<PinnedObject> pin = store.PinInternal(ref.ns(), ref.key());
      if (!pin.ok()) return absl::AbortedError(absl::StrCat(Name(ref), " went away mid-collective"));
      r.set_inline_data(base + pin->offset, pin->meta.size);
      store.Unpin(*pin);
    }
  }
  return absl::OkStatus();
}

absl::Status ProgramHandler::RunStep(Task& task, const proto::ProgramStep& step, uint64_t slots,
                                     std::function<void()> on_all_issued) {
  const proto::CollectiveProgram& p = task.program;
  ObjectStore& store = *deps_.store;
  const proto::ProgramObject& dst = *FindObject(p, step.dst());
  const std::string& ns = dst.ref().ns();
  absl::StatusOr<PinnedObject> hold = store.PinInternal(ns, dst.ref().key());
  if (!hold.ok()) return absl::AbortedError(absl::StrCat(Name(dst.ref()), " went away mid-collective"));
  absl::Status s;
  if (step.kind() == proto::ProgramStep::COPY) {
    const proto::ProgramObject& src = *FindObject(p, step.src());
    absl::StatusOr<PinnedObject> from = store.PinInternal(ns, src.ref().key());
    absl::StatusOr<std::vector<uint32_t>> missing = store.MissingChunks(ns, src.ref().key());
    if (!from.ok() || !missing.ok()) {
      s = absl::AbortedError(absl::StrCat(Name(src.ref()), " went away mid-collective"));
    } else {
      for (uint32_t k : *missing) {
        if (k >= step.first_chunk() && k < step.end_chunk()) {
          s = absl::InternalError(absl::StrCat("copy of chunk ", k, " of ", Name(src.ref()), " before it is complete"));
          break;
        }
      }
      if (s.ok()) {
        auto* base = static_cast<uint8_t*>(deps_.arena.base);
        const ChunkProgress shape(dst.meta().size(), dst.chunk_size());
        const ChunkProgress from_shape(src.meta().size(), src.chunk_size());
        for (uint32_t k = step.first_chunk(); k < step.end_chunk(); ++k) {
          const uint32_t d = step.dst_first_chunk() + (k - step.first_chunk());
          const auto [src_first, len] = from_shape.ChunkRange(k);
          std::memcpy(base + hold->offset + shape.ChunkRange(d).first, base + from->offset + src_first, len);
          store.MarkChunk(ns, dst.ref().key(), d);
        }
      }
    }
    if (from.ok()) store.Unpin(*from);
    store.Unpin(*hold);
    return s;
  }
  PullSpec spec;
  spec.sender = step.peer();
  spec.ns = ns;
  spec.key = dst.ref().key();
  spec.remote_key = step.src().key();
  spec.size = dst.meta().size();
  spec.chunk_size = dst.chunk_size();
  spec.window = p.window();
  spec.dst = deps_.arena.Slice(hold->offset, dst.meta().size());
  spec.deadline = absl::FromUnixMillis(p.deadline_unix_ms());
  spec.stop = &task.halt;
  spec.max_rate_Bps = deps_.max_pull_rate_Bps;
  spec.first_chunk = step.first_chunk();
  spec.end_chunk = step.end_chunk();
  spec.on_all_issued = std::move(on_all_issued);
  std::unique_ptr<ReduceSink> sink;
  if (step.kind() == proto::ProgramStep::PULL_REDUCE) {
    ReduceSinkSpec rs{ns, dst.ref().key(), static_cast<ReduceOp>(p.op()), static_cast<DType>(p.dtype()), deps_.arena,
                      hold->offset, dst.meta().size(), deps_.scratch, slots, dst.chunk_size(),
                      p.window()};
    absl::StatusOr<std::unique_ptr<ReduceSink>> made = ReduceSink::Create(&store, rs);
    if (!made.ok()) {
      store.Unpin(*hold);
      return made.status();
    }
    sink = std::move(*made);
    spec.sink = sink.get();
  }
  PullStats stats;
  s = Puller(deps_.transport, &store).Pull(spec, &stats);
  deps_.counters->bytes_received += stats.bytes;
  deps_.counters->chunks_received += stats.chunks;
  store.Unpin(*hold);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("pulling chunks [", step.first_chunk(), ", ", step.end_chunk(), ") of ",
                                               Name(step.src()), " from node ", step.peer(), ": ", s.message()));
  }
  return absl::OkStatus();
}

void ProgramHandler::DropCreated(Task& task, bool all) {
  for (const proto::ObjectRef& ref : task.created) {
    bool published = false;
    for (const proto::ObjectRef& r : task.program.publish()) published |= SameRef(r, ref);
    if (published && !all) continue;
    // This incarnation only (in any state: receiving scratch, a sealed result of a failed
    // program); pulls of it held or in flight fail NOT_FOUND.
    deps_.store->Drop(ref.ns(), ref.key(), FindObject(task.program, ref)->meta().incarnation());
  }
  task.created.clear();
}

void ProgramHandler::Report(const proto::CollectiveProgram& program, const absl::Status& s, uint64_t failed_peer,
                            const std::vector<proto::ProgramResult>& results) {
  proto::NodeMessage msg;
  proto::ProgramReport* r = msg.mutable_program_report();
  r->set_op_id(program.op_id());
  r->set_ok(s.ok());
  if (!s.ok()) {
    r->set_error(std::string(s.message()));
    r->set_failed_peer(failed_peer);
  } else {
    for (const proto::ProgramResult& res : results) *r->add_results() = res;
  }
  if (!deps_.send(msg)) {
    spdlog::warn("group collective {}: no coordinator session for the report", program.op_id());
  }
}

}  // namespace ferry::dataplane
