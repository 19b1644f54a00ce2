#include "dataplane/engine/puller.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "dataplane/engine/chunk_request.h"

namespace ferry::dataplane {
namespace {

// Shared between Pull and the completion callbacks. Callbacks hold it by shared_ptr and
// capture nothing else, so a completion that arrives after Pull returned is harmless.
struct PullState : std::enable_shared_from_this<PullState> {
  PullState(Transport* t, ObjectStore* s, const PullSpec& sp)
      : transport(t), store(s), spec(sp), shape(sp.size, sp.chunk_size) {}

  // Issues fetches until the window is full. Called with mu held.
  void Issue() {
    const uint32_t window = std::max<uint32_t>(spec.window, 1);
    while (!stop && in_flight < window && next < missing.size()) {
      if (spec.max_rate_Bps > 0 && issued_bytes > spec.max_rate_Bps * absl::ToDoubleSeconds(absl::Now() - start)) {
        break;   // over the rate cap: the waiting loop issues more later
      }
      const uint32_t k = missing[next++];
      auto [first, len] = shape.ChunkRange(k);
      issued_bytes += len;
      ++in_flight;
      ChunkRequest req{spec.ns, spec.key, k, spec.chunk_size};
      transport->Fetch(spec.sender, EncodeChunkRequest(req), spec.dst + first, len,
                       [self = shared_from_this(), k](absl::Status s) { self->OnDone(k, std::move(s)); });
    }
  }

  void OnDone(uint32_t k, absl::Status s) {
    if (s.ok()) store->MarkChunk(spec.ns, spec.key, k);
    std::lock_guard<std::mutex> lock(mu);
    --in_flight;
    if (s.ok()) {
      if (landed++ == 0) first_landed = absl::Now();
      landed_bytes += shape.ChunkRange(k).second;
      Issue();
    } else if (error.ok()) {
      error = absl::Status(s.code(), absl::StrCat("chunk ", k, " of ", PrintableName(spec.ns, spec.key), " from node ",
                                                  spec.sender, ": ", s.message()));
      stop = true;
    }
    // Wake Pull only when its loop may end: every fetch back after the last chunk or an
    // error. A wakeup per chunk would preempt the transport's thread on a busy core for
    // nothing (Pull re-checks the deadline on its own timer; rate-capped pulls poll).
    if (in_flight == 0 && (stop || landed == missing.size())) cv.notify_all();
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
  size_t landed = 0;
  uint64_t landed_bytes = 0;
  uint64_t issued_bytes = 0;
  absl::Status error;
  bool stop = false;
  absl::Time start;
  absl::Time first_landed;
};

// After the deadline, how long to wait for fetches already in flight to complete (they are
// failed by RemovePeer; a transport that was shut down completes nothing).
constexpr absl::Duration kDrainGrace = absl::Seconds(2);

}  // namespace

absl::Status Puller::Pull(const PullSpec& spec, PullStats* stats) {
  absl::StatusOr<std::vector<uint32_t>> missing = store_->MissingChunks(spec.ns, spec.key);
  if (!missing.ok()) return missing.status();
  auto state = std::make_shared<PullState>(transport_, store_, spec);
  state->missing = std::move(*missing);
  state->start = absl::Now();

  std::unique_lock<std::mutex> lock(state->mu);
  state->Issue();
  bool timed_out = false;
  absl::Time drain_until = absl::InfiniteFuture();
  while (state->in_flight > 0 || (!state->stop && state->landed < state->missing.size())) {
    if (!timed_out && (absl::Now() >= spec.deadline || (spec.stop != nullptr && spec.stop->load()))) {
      timed_out = true;
      state->stop = true;   // issue no more; wait (bounded) for what is in flight
      drain_until = absl::Now() + kDrainGrace;
      if (state->in_flight > 0) {
        // Dropping the peer fails its outstanding fetches (UNAVAILABLE), so a sender that
        // hangs cannot hold this pull past its deadline. It is re-added when next needed.
        lock.unlock();
        transport_->RemovePeer(spec.sender);
        lock.lock();
      }
    }
    if (absl::Now() >= drain_until) break;
    state->cv.wait_for(lock, std::chrono::milliseconds(timed_out ? 100 : spec.max_rate_Bps > 0 ? 2 : 50));
    if (state->in_flight == 0 && state->stop) break;
    if (spec.max_rate_Bps > 0) state->Issue();
  }
  stats->chunks = state->landed;
  stats->seconds = absl::ToDoubleSeconds(absl::Now() - state->start);
  stats->first_chunk_s = state->landed > 0 ? absl::ToDoubleSeconds(state->first_landed - state->start) : 0;
  stats->bytes = state->landed_bytes;
  if (!state->error.ok()) return state->error;
  if (spec.stop != nullptr && spec.stop->load() && state->landed < state->missing.size()) {
    return absl::CancelledError(absl::StrCat("pull of ", PrintableName(spec.ns, spec.key), " from node ", spec.sender,
                                             ": ferryd is shutting down"));
  }
  if (state->in_flight > 0) {
    return absl::DeadlineExceededError(absl::StrCat("pull of ", PrintableName(spec.ns, spec.key), " from node ",
                                                    spec.sender, ": ", state->in_flight,
                                                    " chunk fetches did not complete after the deadline"));
  }
  if (state->landed < state->missing.size()) {
    return absl::DeadlineExceededError(absl::StrCat("pull of ", PrintableName(spec.ns, spec.key), " from node ",
                                                    spec.sender, " did not finish before the deadline (",
                                                    state->landed, " of ", state->missing.size(), " chunks)"));
  }
  return absl::OkStatus();
}

}  // namespace ferry::dataplane
