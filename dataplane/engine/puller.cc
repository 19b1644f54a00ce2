#include "dataplane/engine/puller.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/names.h"
#include "dataplane/engine/chunk_request.h"
#include "dataplane/engine/chunk_sink.h"

namespace ferry::dataplane {
namespace {

// How long Pull waits for its cancelled fetches before it resets the connection.
constexpr absl::Duration kCancelWait = absl::Seconds(5);

// `s` with `prefix` before its message; code kept, and the "object deleted" mark (which only
// a payload or, across the wire, the message phrase carries).
absl::Status Annotated(const absl::Status& s, absl::string_view prefix) {
  absl::Status out(s.code(), absl::StrCat(prefix, s.message()));
  if (IsObjectDeleted(s) ||
      (s.code() == absl::StatusCode::kNotFound && absl::StrContains(s.message(), kObjectDeletedPhrase))) {
    out = MarkObjectDeleted(std::move(out));
  }
  return out;
}

// Shared between Pull, the completion callbacks and the removal watch. Callbacks hold it by
// shared_ptr, so whatever runs late finds it alive; Pull returns only when every fetch's
// callback has run.
struct PullState : std::enable_shared_from_this<PullState> {
  PullState(Transport* t, const PullSpec& sp, ChunkSink* sk)
      : transport(t), spec(sp), sink(sk), shape(sp.size, sp.chunk_size) {}

  // Picks the chunks to fetch next (window, rate cap) and counts them in flight.
  std::vector<uint32_t> TakeIssuable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<uint32_t> out;
    const uint32_t window = std::max<uint32_t>(spec.window, 1);
    while (!stop && in_flight < window && next < missing.size()) {
      if (spec.max_rate_Bps > 0 && issued_bytes > spec.max_rate_Bps * absl::ToDoubleSeconds(absl::Now() - start)) {
        break;   // over the rate cap: the waiting loop issues more later
      }
      const uint32_t k = missing[next++];
      issued_bytes += shape.ChunkRange(k).second;
      ++in_flight;
      outstanding.emplace(k, 0);
      out.push_back(k);
    }
    if (next == missing.size() && !told_all_issued && spec.on_all_issued) {
      told_all_issued = true;
      spec.on_all_issued();
    }
    return out;
  }

  // Starts the fetches TakeIssuable picked. mu not held: a transport may complete (or drop)
  // a fetch inside Fetch.
  void Send(const std::vector<uint32_t>& chunks) ABSL_LOCKS_EXCLUDED(mu);

  // Chunk k's fetch ended with `s`. `fetched`: false when no fetch was issued (the sink gave
  // no destination), so the sink is not told the chunk was abandoned.
  void OnDone(uint32_t k, absl::Status s, bool fetched = true) ABSL_LOCKS_EXCLUDED(mu) {
    if (s.ok()) {
      s = sink->Landed(k);
    } else if (fetched) {
      sink->Abandoned(k);
    }
    std::vector<uint32_t> more;
    {
      absl::MutexLock lock(&mu);
      outstanding.erase(k);
      --in_flight;
      if (s.ok()) {
        if (landed++ == 0) first_landed = absl::Now();
        landed_bytes += shape.ChunkRange(k).second;
        more = TakeIssuable();
      } else {
        FailLocked(Annotated(s, absl::StrCat("chunk ", k, " of ", PrintableName(spec.ns, spec.key), " from node ",
                                             spec.sender, ": ")));
      }
      // Pull waits on Finished(): absl::Mutex re-evaluates it as this lock is released and
      // wakes Pull only once it holds, not per chunk (which would preempt the transport's
      // thread on a busy core for nothing).
    }
    Send(more);
  }

  // Ends the pull with `why` (the first error wins).
  void FailLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (error.ok()) error = std::move(why);
    stop = true;
  }

  // Pull's loop may end: stopped, or every chunk landed.
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop || landed == missing.size(); }
  bool AllBack() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight == 0; }

  Transport* const transport;
  const PullSpec spec;
  ChunkSink* const sink;
  const ChunkProgress shape;
  // Guards the pull's progress below. Callbacks of different chunks take it briefly; Pull
  // waits on it with conditions (Finished, AllBack).
  absl::Mutex mu;
  std::vector<uint32_t> missing ABSL_GUARDED_BY(mu);
  size_t next ABSL_GUARDED_BY(mu) = 0;
  uint32_t in_flight ABSL_GUARDED_BY(mu) = 0;
  // Chunk -> its outstanding fetch (0 until Fetch has returned the id).
  absl::flat_hash_map<uint32_t, FetchId> outstanding ABSL_GUARDED_BY(mu);
  // Pull is cancelling: a fetch whose id arrives later is cancelled too.
  bool cancelling ABSL_GUARDED_BY(mu) = false;
  size_t landed ABSL_GUARDED_BY(mu) = 0;
  uint64_t landed_bytes ABSL_GUARDED_BY(mu) = 0;
  uint64_t issued_bytes ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  bool told_all_issued ABSL_GUARDED_BY(mu) = false;
  absl::Time start ABSL_GUARDED_BY(mu);
  absl::Time first_landed ABSL_GUARDED_BY(mu);
};

// The Done of one chunk fetch. A transport that drops the operation without running it
// (after Shutdown) destroys it: that counts as a completion with CANCELLED, so Pull never
// waits for a callback that cannot come.
class FetchDone {
 public:
  FetchDone(std::shared_ptr<PullState> state, uint32_t k) : state_(std::move(state)), k_(k) {}
  FetchDone(FetchDone&& other) noexcept : state_(std::move(other.state_)), k_(other.k_) {}
  FetchDone& operator=(FetchDone&&) = delete;
  ~FetchDone() {
    if (state_) {
      std::exchange(state_, nullptr)->OnDone(k_, absl::CancelledError("the transport dropped the fetch (shut down)"));
    }
  }
  void operator()(absl::Status s) {
    if (state_) std::exchange(state_, nullptr)->OnDone(k_, std::move(s));
  }

 private:
  std::shared_ptr<PullState> state_;
  uint32_t k_;
};

void PullState::Send(const std::vector<uint32_t>& chunks) {
  for (uint32_t k : chunks) {
    auto [first, len] = shape.ChunkRange(k);
    absl::StatusOr<LocalSlice> dst = sink->Destination(k, first, len);
    if (!dst.ok()) {
      OnDone(k, dst.status(), /*fetched=*/false);
      continue;
    }
    ChunkRequest req{spec.ns, spec.remote_key.empty() ? spec.key : spec.remote_key, k, spec.chunk_size};
    const FetchId id = transport->Fetch(spec.sender, EncodeChunkRequest(req), *dst, FetchDone(shared_from_this(), k));
    bool cancel = false;
    {
      absl::MutexLock lock(&mu);
      auto it = outstanding.find(k);
      if (it != outstanding.end()) {   // else it has completed already
        it->second = id;
        cancel = cancelling;
      }
    }
    if (cancel) transport->CancelFetch(id);
  }
}

// Cancels every outstanding fetch and waits until each has completed: first up to
// kCancelWait, then, should the transport not have finished them (a receive that does not
// end), it resets the connection, which completes everything, and waits for that.
void Drain(PullState& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
  st.cancelling = true;
  std::vector<FetchId> ids;
  for (const auto& [k, id] : st.outstanding) {
    if (id != 0) ids.push_back(id);
  }
  st.mu.Unlock();
  for (FetchId id : ids) st.transport->CancelFetch(id);
  st.mu.Lock();
  const absl::Condition all_back(&st, &PullState::AllBack);
  if (st.mu.AwaitWithTimeout(all_back, kCancelWait)) return;
  st.mu.Unlock();
  st.transport->ResetPeer(st.spec.sender);
  st.mu.Lock();
  st.mu.Await(all_back);   // a reset completes every operation to the peer
}

}  // namespace

absl::Status Puller::Pull(const PullSpec& spec, PullStats* stats) {
  absl::StatusOr<std::vector<uint32_t>> missing = store_->MissingChunks(spec.ns, spec.key);
  if (!missing.ok()) return missing.status();
  if (spec.first_chunk > 0 || spec.end_chunk != UINT32_MAX) {
    std::erase_if(*missing, [&](uint32_t k) { return k < spec.first_chunk || k >= spec.end_chunk; });
  }
  CopySink copy(store_, spec.ns, spec.key, spec.dst);
  auto state = std::make_shared<PullState>(transport_, spec, spec.sink != nullptr ? spec.sink : &copy);
  {
    absl::MutexLock lock(&state->mu);
    state->missing = std::move(*missing);
    state->start = absl::Now();
  }
  // Our own copy deleted (or dropped) mid-pull ends the pull at once.
  absl::StatusOr<uint64_t> watch = store_->WatchRemoval(
      spec.ns, spec.key, [weak = std::weak_ptr<PullState>(state)](absl::Status why) {
        auto st = weak.lock();
        if (!st) return;
        absl::MutexLock lock(&st->mu);
        st->FailLocked(Annotated(why, absl::StrCat("pull of ", PrintableName(st->spec.ns, st->spec.key),
                                                   " from node ", st->spec.sender, ": receiving copy: ")));
      });
  if (!watch.ok()) return watch.status();

  PullState& st = *state;
  st.mu.Lock();
  std::vector<uint32_t> first = st.TakeIssuable();
  st.mu.Unlock();
  st.Send(first);
  st.mu.Lock();
  const absl::Condition finished(&st, &PullState::Finished);
  while (!st.Finished()) {
    const absl::Time now = absl::Now();
    if (now >= spec.deadline) {
      // Ends this pull only: its own fetches are cancelled below; the peer, and other pulls
      // from it, are left alone.
      st.FailLocked(absl::DeadlineExceededError(absl::StrCat(
          "pull of ", PrintableName(spec.ns, spec.key), " from node ", spec.sender,
          " did not finish before the deadline (", st.landed, " of ", st.missing.size(), " chunks)")));
      break;
    }
    if (spec.stop != nullptr && spec.stop->load()) {
      st.FailLocked(absl::CancelledError(absl::StrCat("pull of ", PrintableName(spec.ns, spec.key), " from node ",
                                                      spec.sender, ": ferryd is shutting down")));
      break;
    }
    const absl::Time wake = spec.max_rate_Bps > 0 ? std::min(spec.deadline, now + absl::Milliseconds(2))
                                                  : std::min(spec.deadline, now + absl::Milliseconds(200));
    st.mu.AwaitWithDeadline(finished, wake);
    if (spec.max_rate_Bps > 0 && !st.stop) {
      std::vector<uint32_t> more = st.TakeIssuable();
      st.mu.Unlock();
      st.Send(more);
      st.mu.Lock();
    }
  }
  if (st.in_flight > 0) Drain(st);
  st.mu.Unlock();
  store_->Unwatch(*watch);
  absl::MutexLock lock(&st.mu);
  stats->chunks = st.landed;
  stats->seconds = absl::ToDoubleSeconds(absl::Now() - st.start);
  stats->first_chunk_s = st.landed > 0 ? absl::ToDoubleSeconds(st.first_landed - st.start) : 0;
  stats->bytes = st.landed_bytes;
  return st.error;   // OK when every chunk landed (nothing else ends the loop without one)
}

}  // namespace ferry::dataplane
