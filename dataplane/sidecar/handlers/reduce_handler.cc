#include "dataplane/sidecar/handlers/reduce_handler.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/dtype.h"
#include "core/names.h"
#include "dataplane/engine/puller.h"
#include "dataplane/engine/reduce_sink.h"
#include "dataplane/store/chunk_progress.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

struct ReduceHandler::Task {
  explicit Task(proto::ReducePosition p) : pos(std::move(p)) {}
  const proto::ReducePosition pos;
  std::atomic<bool> cancel{false};   // a newer generation came, or shutdown: end the pulls
  absl::Notification finished;
};

namespace {

std::string Name(const proto::ObjectRef& ref) { return PrintableName(ref.ns(), ref.key()); }

absl::Status Check(const proto::ReducePosition& pos) {
  const std::string what = absl::StrCat("reduce ", pos.op_id(), " position ", pos.position());
  for (const proto::ObjectRef* ref : {&pos.input(), &pos.partial()}) {
    if (absl::Status s = ValidateObjectName(ref->ns(), ref->key()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
    }
  }
  for (const proto::ReduceChild& c : pos.children()) {
    if (c.node() == 0 || c.partial().ns() != pos.partial().ns() ||
        !ValidateObjectName(c.partial().ns(), c.partial().key()).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": a child names no node or an invalid object"));
    }
  }
  if (pos.children_size() > static_cast<int>(ReduceHandler::kMaxChildren)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", pos.children_size(), " children, at most ",
                                                   ReduceHandler::kMaxChildren));
  }
  if (!CheckReduceArithmetic(pos.op(), pos.dtype()).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no arithmetic for op ", pos.op(), " on dtype ", pos.dtype()));
  }
  const auto dtype = static_cast<DType>(pos.dtype());
  const uint64_t width = DTypeSize(dtype);
  if (pos.meta().size() == 0 || pos.meta().size() % width != 0 || pos.chunk_size() == 0 ||
      pos.chunk_size() % width != 0 || uint64_t{pos.chunk_size()} * ReduceHandler::kMaxChildren > ReduceHandler::kSetBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": size ", pos.meta().size(), " / chunk ", pos.chunk_size(),
                                                   " do not fit dtype ", DTypeName(dtype)));
  }
  return absl::OkStatus();
}

StoredMeta MetaOf(const proto::ObjectMeta& m) {
  return StoredMeta{m.size(), static_cast<uint32_t>(m.dtype()), m.count(), m.incarnation(), false, 0};
}

}  // namespace

ReduceHandler::ReduceHandler(ReduceDeps deps, size_t max_positions)
    : deps_(std::move(deps)), builds_("reduce positions", max_positions) {
  for (uint32_t i = 0; i < deps_.slot_sets; ++i) free_sets_.push_back(i);
}

ReduceHandler::~ReduceHandler() { Shutdown(); }

void ReduceHandler::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [key, task] : tasks_) task->cancel.store(true);
  }
  builds_.Shutdown();
}

void ReduceHandler::Handle(const proto::ReducePosition& pos) {
  auto task = std::make_shared<Task>(pos);
  std::shared_ptr<Task> previous;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    std::shared_ptr<Task>& slot = tasks_[Key(pos.op_id(), pos.position())];
    if (slot != nullptr && slot->pos.generation() >= pos.generation()) return;   // stale or repeated
    previous = std::exchange(slot, task);
    if (previous != nullptr) previous->cancel.store(true);
    ForgetOldLocked();
  }
  absl::Status submitted = builds_.Submit([this, task, previous] { Run(task, previous); });
  if (!submitted.ok()) {
    spdlog::warn("reduce {} position {}: {}", pos.op_id(), pos.position(), std::string(submitted.message()));
    Report(pos, submitted, 0);
    task->finished.Notify();
  }
}

void ReduceHandler::ForgetOldLocked() {
  for (auto it = tasks_.begin(); tasks_.size() > kMaxRemembered && it != tasks_.end();) {
    it = it->second->finished.HasBeenNotified() ? tasks_.erase(it) : std::next(it);
  }
}

void ReduceHandler::Run(const std::shared_ptr<Task>& task, const std::shared_ptr<Task>& previous) {
  if (previous != nullptr) {
    previous->finished.WaitForNotification();
    // Whatever the earlier generation built is stale now (it may hold a lost child's data).
    const proto::ObjectRef& old = previous->pos.partial();
    if (deps_.store->Contains(old.ns(), old.key())) deps_.store->Drop(old.ns(), old.key(), 0);
  }
  uint64_t failed_child = 0;
  const absl::Time start = absl::Now();
  absl::Status s = Build(*task, &failed_child);
  if (!task->cancel.load()) {
    if (s.ok()) {
      spdlog::debug("reduce {} position {} (generation {}): {} children combined in {:.3f} ms", task->pos.op_id(),
                    task->pos.position(), task->pos.generation(), task->pos.children_size(),
                    absl::ToDoubleMilliseconds(absl::Now() - start));
    } else {
      spdlog::warn("reduce {} position {} (generation {}) failed: {}", task->pos.op_id(), task->pos.position(),
                   task->pos.generation(), std::string(s.message()));
    }
    Report(task->pos, s, failed_child);
  }
  task->finished.Notify();
}

absl::Status ReduceHandler::Build(Task& task, uint64_t* failed_child) {
  const proto::ReducePosition& pos = task.pos;
  if (absl::Status s = Check(pos); !s.ok()) return s;
  ObjectStore& store = *deps_.store;
  const std::string& ns = pos.partial().ns();
  const std::string& key = pos.partial().key();
  absl::StatusOr<PinnedObject> input = store.PinSealed(pos.input().ns(), pos.input().key(), kInternalSession);
  if (!input.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("reduce input ", Name(pos.input()), " is not sealed on this node: ", input.status().message()));
  }
  if (input->meta.size != pos.meta().size()) {
    store.Unpin(*input);
    return absl::FailedPreconditionError(absl::StrCat("reduce input ", Name(pos.input()), " has ", input->meta.size,
                                                      " bytes, the reduce ", pos.meta().size()));
  }
  // A partial sum left by an earlier run of this position goes first. Only if there is one:
  // dropping an absent name would fail the parent's requests already held for it.
  if (store.Contains(ns, key)) store.Drop(ns, key, 0);
  absl::StatusOr<uint64_t> offset = store.CreateReceiving(ns, key, MetaOf(pos.meta()), pos.chunk_size());
  absl::StatusOr<PinnedObject> hold = offset.ok() ? store.PinInternal(ns, key) : offset.status();
  if (!hold.ok()) {
    store.Unpin(*input);
    return absl::Status(hold.status().code(),
                        absl::StrCat("creating the partial sum ", Name(pos.partial()), ": ", hold.status().message()));
  }
  auto* base = static_cast<uint8_t*>(deps_.arena.base);
  std::memcpy(base + hold->offset, base + input->offset, pos.meta().size());
  store.Unpin(*input);
  absl::Status s;
  if (pos.children().empty()) {
    const ChunkProgress shape(pos.meta().size(), pos.chunk_size());
    for (uint32_t k = 0; k < shape.num_chunks(); ++k) store.MarkChunk(ns, key, k);
  } else {
    s = PullChildren(task, hold->offset, failed_child);
  }
  if (s.ok()) s = store.FinishReceiving(ns, key);
  store.Unpin(*hold);
  if (s.ok() && pos.is_root()) s = deps_.publish(ns, key);
  if (!s.ok()) store.Drop(ns, key, 0);
  return s;
}

absl::StatusOr<uint32_t> ReduceHandler::TakeSlotSet(Task& task) {
  const absl::Time deadline = absl::FromUnixMillis(task.pos.deadline_unix_ms());
  absl::MutexLock lock(&mu_);
  auto free = [this] {
    mu_.AssertHeld();
    return !free_sets_.empty();
  };
  // The cancel flag is not under mu_: look at it every 100 ms.
  while (!mu_.AwaitWithTimeout(absl::Condition(&free), absl::Milliseconds(100))) {
    if (task.cancel.load()) return absl::CancelledError("reduce position cancelled while waiting for scratch");
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("reduce position: no scratch slots became free before the deadline");
    }
  }
  const uint32_t set = free_sets_.back();
  free_sets_.pop_back();
  return set;
}

void ReduceHandler::GiveSlotSet(uint32_t set) {
  absl::MutexLock lock(&mu_);
  free_sets_.push_back(set);
}

absl::Status ReduceHandler::PullChildren(Task& task, uint64_t offset, uint64_t* failed_child) {
  const proto::ReducePosition& pos = task.pos;
  const uint32_t n = static_cast<uint32_t>(pos.children_size());
  for (const proto::ReduceChild& c : pos.children()) {
    if (absl::Status s = deps_.fetcher->EnsurePeer(c.node(), c.address()); !s.ok()) {
      *failed_child = c.node();
      return absl::UnavailableError(absl::StrCat("reduce child node ", c.node(), ": ", s.message()));
    }
  }
  absl::StatusOr<uint32_t> set = TakeSlotSet(task);
  if (!set.ok()) return set.status();
  const uint32_t window = static_cast<uint32_t>(std::clamp<uint64_t>(
      std::min<uint64_t>(pos.window(), ReduceHandler::kSetBytes / (uint64_t{n} * pos.chunk_size())), 1, 64));
  ReduceSinkSpec spec{pos.partial().ns(), pos.partial().key(), static_cast<ReduceOp>(pos.op()),
                      static_cast<DType>(pos.dtype()), deps_.arena, offset, pos.meta().size(), deps_.scratch,
                      uint64_t{*set} * kSetBytes, pos.chunk_size(), window};
  absl::StatusOr<std::vector<std::unique_ptr<ReduceSink>>> sinks = ReduceSink::CreateGroup(deps_.store, spec, n);
  if (!sinks.ok()) {
    GiveSlotSet(*set);
    return sinks.status();
  }
  std::vector<absl::Status> results(n);
  auto pull = [&](uint32_t i) {
    results[i] = PullChild(task, pos.children(static_cast<int>(i)), (*sinks)[i].get(), offset, window);
  };
  std::vector<std::thread> others;   // the children after the first, joined below
  for (uint32_t i = 1; i < n; ++i) others.emplace_back(pull, i);
  pull(0);
  for (std::thread& t : others) t.join();
  GiveSlotSet(*set);
  for (uint32_t i = 0; i < n; ++i) {
    if (results[i].ok()) continue;
    // The first failure that is not the abort it caused in a sibling.
    if (results[i].code() == absl::StatusCode::kAborted && n > 1) continue;
    *failed_child = pos.children(static_cast<int>(i)).node();
    return results[i];
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (!results[i].ok()) {
      *failed_child = pos.children(static_cast<int>(i)).node();
      return results[i];
    }
  }
  return absl::OkStatus();
}

absl::Status ReduceHandler::PullChild(Task& task, const proto::ReduceChild& child, ChunkSink* sink, uint64_t offset,
                                      uint32_t window) {
  const proto::ReducePosition& pos = task.pos;
  PullSpec p;
  p.sender = child.node();
  p.ns = pos.partial().ns();
  p.key = pos.partial().key();
  p.remote_key = child.partial().key();
  p.size = pos.meta().size();
  p.chunk_size = pos.chunk_size();
  p.window = window;
  p.dst = deps_.arena.Slice(offset, pos.meta().size());
  p.deadline = absl::FromUnixMillis(pos.deadline_unix_ms());
  p.stop = &task.cancel;
  p.max_rate_Bps = deps_.max_pull_rate_Bps;
  p.sink = sink;
  PullStats stats;
  absl::Status s = Puller(deps_.transport, deps_.store).Pull(p, &stats);
  deps_.counters->bytes_received += stats.bytes;
  deps_.counters->chunks_received += stats.chunks;
  // A failed child ends the sibling's pull too (its receiving copy is gone).
  if (!s.ok()) deps_.store->AbortReceiving(p.ns, p.key, s);
  return s;
}

void ReduceHandler::Report(const proto::ReducePosition& pos, const absl::Status& s, uint64_t failed_child) {
  proto::NodeMessage msg;
  proto::ReducePositionReport* r = msg.mutable_reduce_report();
  r->set_op_id(pos.op_id());
  r->set_position(pos.position());
  r->set_generation(pos.generation());
  r->set_ok(s.ok());
  if (!s.ok()) {
    r->set_error(std::string(s.message()));
    r->set_failed_child(failed_child);
  }
  if (!deps_.send(msg)) {
    spdlog::warn("reduce {} position {}: no coordinator session for the report", pos.op_id(), pos.position());
  }
}

}  // namespace ferry::dataplane
