#include "dataplane/engine/puller.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "dataplane/engine/chunk_request.h"

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
  PullState(Transport* t, ObjectStore* s, const PullSpec& sp)
      : transport(t), store(s), spec(sp), shape(sp.size, sp.chunk_size) {}

  // Picks the chunks to fetch next (window, rate cap) and counts them in flight. mu held.
  std::vector<uint32_t> TakeIssuable() {
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
    return out;
  }

  // Starts the fetches TakeIssuable picked. mu not held: a transport may complete (or drop)
  // a fetch inside Fetch.
  void Send(const std::vector<uint32_t>& chunks);

  void OnDone(uint32_t k, absl::Status s) {
    if (s.ok()) store->MarkChunk(spec.ns, spec.key, k);
    std::vector<uint32_t> more;
    {
      std::lock_guard<std::mutex> lock(mu);
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
      // Wake Pull only when its loop may end or drain: a wakeup per chunk would preempt the
      // transport's thread on a busy core for nothing (Pull re-checks the deadline on its own
      // timer; rate-capped pulls poll).
      if (stop || landed == missing.size()) cv.notify_all();
    }
    Send(more);
  }

  // Ends the pull with `why` (the first error wins). mu held.
  void FailLocked(absl::Status why) {
    if (error.ok()) error = std::move(why);
    stop = true;
    cv.notify_all();
  }

  Transport* transport;
  ObjectStore* store;
  const PullSpec spec;
  const ChunkProgress shape;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint32_t> missing;
  size_t next = 0;
  uint32_t in_flight = 0;
  // Chunk -> its outstanding fetch (0 until Fetch has returned the id).
  absl::flat_hash_map<uint32_t, FetchId> outstanding;
  bool cancelling = false;   // Pull is cancelling: a fetch whose id arrives later is cancelled too
  size_t landed = 0;
  uint64_t landed_bytes = 0;
  uint64_t issued_bytes = 0;
  absl::Status error;
  bool stop = false;
  absl::Time start;
  absl::Time first_landed;
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
    ChunkRequest req{spec.ns, spec.key, k, spec.chunk_size};
    const FetchId id = transport->Fetch(spec.sender, EncodeChunkRequest(req), spec.dst + first, len,
                                        FetchDone(shared_from_this(), k));
    bool cancel = false;
    {
      std::lock_guard<std::mutex> lock(mu);
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
void Drain(PullState& st, std::unique_lock<std::mutex>& lock) {
  st.cancelling = true;
  std::vector<FetchId> ids;
  for (const auto& [k, id] : st.outstanding) {
    if (id != 0) ids.push_back(id);
  }
  lock.unlock();
  for (FetchId id : ids) st.transport->CancelFetch(id);
  lock.lock();
  auto all_back = [&st] { return st.in_flight == 0; };
  if (st.cv.wait_for(lock, absl::ToChronoNanoseconds(kCancelWait), all_back)) return;
  lock.unlock();
  st.transport->ResetPeer(st.spec.sender);
  lock.lock();
  st.cv.wait(lock, all_back);   // a reset completes every operation to the peer
}

}  // namespace

absl::Status Puller::Pull(const PullSpec& spec, PullStats* stats) {
  absl::StatusOr<std::vector<uint32_t>> missing = store_->MissingChunks(spec.ns, spec.key);
  if (!missing.ok()) return missing.status();
  auto state = std::make_shared<PullState>(transport_, store_, spec);
  state->missing = std::move(*missing);
  state->start = absl::Now();
  // Our own copy deleted (or dropped) mid-pull ends the pull at once.
  absl::StatusOr<uint64_t> watch = store_->WatchRemoval(
      spec.ns, spec.key, [weak = std::weak_ptr<PullState>(state)](absl::Status why) {
        auto st = weak.lock();
        if (!st) return;
        std::lock_guard<std::mutex> lock(st->mu);
        st->FailLocked(Annotated(why, absl::StrCat("pull of ", PrintableName(st->spec.ns, st->spec.key),
                                                   " from node ", st->spec.sender, ": receiving copy: ")));
      });
  if (!watch.ok()) return watch.status();

  std::unique_lock<std::mutex> lock(state->mu);
  std::vector<uint32_t> first = state->TakeIssuable();
  lock.unlock();
  state->Send(first);
  lock.lock();
  while (!state->stop && state->landed < state->missing.size()) {
    const absl::Time now = absl::Now();
    if (now >= spec.deadline) {
      // Ends this pull only: its own fetches are cancelled below; the peer, and other pulls
      // from it, are left alone.
      state->FailLocked(absl::DeadlineExceededError(absl::StrCat(
          "pull of ", PrintableName(spec.ns, spec.key), " from node ", spec.sender,
          " did not finish before the deadline (", state->landed, " of ", state->missing.size(), " chunks)")));
      break;
    }
    if (spec.stop != nullptr && spec.stop->load()) {
      state->FailLocked(absl::CancelledError(absl::StrCat("pull of ", PrintableName(spec.ns, spec.key), " from node ",
                                                          spec.sender, ": ferryd is shutting down")));
      break;
    }
    const absl::Time wake = spec.max_rate_Bps > 0 ? std::min(spec.deadline, now + absl::Milliseconds(2))
                                                  : std::min(spec.deadline, now + absl::Milliseconds(200));
    state->cv.wait_for(lock, absl::ToChronoNanoseconds(wake - now));
    if (spec.max_rate_Bps > 0 && !state->stop) {
      std::vector<uint32_t> more = state->TakeIssuable();
      lock.unlock();
      state->Send(more);
      lock.lock();
    }
  }
  if (state->in_flight > 0) Drain(*state, lock);
  lock.unlock();
  store_->Unwatch(*watch);
  lock.lock();
  stats->chunks = state->landed;
  stats->seconds = absl::ToDoubleSeconds(absl::Now() - state->start);
  stats->first_chunk_s = state->landed > 0 ? absl::ToDoubleSeconds(state->first_landed - state->start) : 0;
  stats->bytes = state->landed_bytes;
  return state->error;   // OK when every chunk landed (nothing else ends the loop without one)
}

}  // namespace ferry::dataplane
