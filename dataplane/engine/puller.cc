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

// Shared between Pull and the completion callbacks; outlives Pull if it must.
struct PullState {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint32_t> missing;
  size_t next = 0;
  uint32_t in_flight = 0;
  size_t landed = 0;
  absl::Status error;
  bool stop = false;
  absl::Time start;
  absl::Time first_landed;
  uint64_t issued_bytes = 0;
};

}  // namespace

absl::Status Puller::Pull(const PullSpec& spec, PullStats* stats) {
  absl::StatusOr<std::vector<uint32_t>> missing = store_->MissingChunks(spec.ns, spec.key);
  if (!missing.ok()) return missing.status();
  auto state = std::make_shared<PullState>();
  state->missing = std::move(*missing);
  state->start = absl::Now();
  ChunkProgress shape(spec.size, spec.chunk_size);
  const uint32_t window = std::max<uint32_t>(spec.window, 1);

  // Issues fetches until the window is full. Called with state->mu held.
  std::function<void()> issue;
  issue = [this, &spec, state, &shape, window, &issue]() {
    while (!state->stop && state->in_flight < window && state->next < state->missing.size()) {
      if (spec.max_rate_Bps > 0 &&
          state->issued_bytes > spec.max_rate_Bps * absl::ToDoubleSeconds(absl::Now() - state->start)) {
        break;   // over the rate cap: the waiting loop issues more later
      }
      const uint32_t k = state->missing[state->next++];
      auto [first, len] = shape.ChunkRange(k);
      state->issued_bytes += len;
      ++state->in_flight;
      ChunkRequest req{spec.ns, spec.key, k, spec.chunk_size};
      transport_->Fetch(spec.sender, EncodeChunkRequest(req), spec.dst + first, len,
                        [this, &spec, state, k, &issue](absl::Status s) {
                          if (s.ok()) store_->MarkChunk(spec.ns, spec.key, k);
                          std::lock_guard<std::mutex> lock(state->mu);
                          --state->in_flight;
                          if (s.ok()) {
                            if (state->landed++ == 0) state->first_landed = absl::Now();
                            issue();
                          } else if (state->error.ok()) {
                            state->error = absl::Status(
                                s.code(), absl::StrCat("chunk ", k, " of ", PrintableName(spec.ns, spec.key),
                                                       " from node ", spec.sender, ": ", s.message()));
                            state->stop = true;
                          }
                          state->cv.notify_all();
                        });
    }
  };

  std::unique_lock<std::mutex> lock(state->mu);
  issue();
  bool timed_out = false;
  while (state->in_flight > 0 || (!state->stop && state->landed < state->missing.size())) {
    if (!timed_out && absl::Now() >= spec.deadline) {
      timed_out = true;
      state->stop = true;   // issue no more; wait for what is in flight
      if (state->in_flight > 0) {
        // Dropping the peer fails its outstanding fetches (UNAVAILABLE), so a sender that
        // hangs cannot hold this pull past its deadline. It is re-added when next needed.
        lock.unlock();
        transport_->RemovePeer(spec.sender);
        lock.lock();
      }
    }
    state->cv.wait_for(lock, std::chrono::milliseconds(timed_out ? 1000 : spec.max_rate_Bps > 0 ? 2 : 50));
    if (state->in_flight == 0 && state->stop) break;
    if (spec.max_rate_Bps > 0) issue();
  }
  // `issue` captures locals by reference: nothing may call it after this point, which holds
  // because in_flight is 0 and stop (or all landed) prevents new fetches.
  stats->chunks = state->landed;
  stats->seconds = absl::ToDoubleSeconds(absl::Now() - state->start);
  stats->first_chunk_s = state->landed > 0 ? absl::ToDoubleSeconds(state->first_landed - state->start) : 0;
  for (size_t i = 0; i < state->landed && i < state->missing.size(); ++i) {
    stats->bytes += shape.ChunkRange(state->missing[i]).second;
  }
  if (!state->error.ok()) return state->error;
  if (state->landed < state->missing.size()) {
    return absl::DeadlineExceededError(absl::StrCat("pull of ", PrintableName(spec.ns, spec.key), " from node ",
                                                    spec.sender, " did not finish before the deadline (",
                                                    state->landed, " of ", state->missing.size(), " chunks)"));
  }
  return absl::OkStatus();
}

}  // namespace ferry::dataplane
