// Pulls the missing chunks of a receiving object from one sender, keeping a window of
// chunks in flight, into a chunk sink (chunk_sink.h): by default a CopySink, which lands each
// chunk straight in the object's place in a registered region (the arena) and marks it in
// the store as it lands (which also wakes peers waiting to be served that chunk).
//
// Threading: Pull blocks the calling thread; completions run on the transport's thread.
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "dataplane/engine/chunk_sink.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"

namespace ferry::dataplane {

struct PullSpec {
  NodeId sender = 0;
  std::string ns;
  std::string key;            // the local object the chunks land in (and, by default, the remote one)
  uint64_t size = 0;
  uint32_t chunk_size = 1 << 20;
  uint32_t window = 4;
  // The object's bytes in a registered region of the transport (the arena): offset of its
  // byte 0 and its size. Used by the default CopySink.
  LocalSlice dst;
  absl::Time deadline = absl::InfiniteFuture();
  double max_rate_Bps = 0;  // > 0: issue chunks no faster than this (operator rate cap)
  const std::atomic<bool>* stop = nullptr;   // set: end the pull (CANCELLED) as at a deadline
  // Where chunks land; null: a CopySink into `dst`. Must outlive the Pull call.
  ChunkSink* sink = nullptr;
  // The sender's key to fetch, when it differs from `key` (a reduce pulls a child's partial sum
  // into its own): empty means `key`. The namespace is the same.
  std::string remote_key;
  // Only chunks [first_chunk, end_chunk) of the object are pulled (a group collective's
  // segment); the defaults mean every chunk. Pull returns OK once those have landed.
  uint32_t first_chunk = 0;
  uint32_t end_chunk = UINT32_MAX;
  // Called once every chunk to pull has been requested (the rest of the pull is landing):
  // a caller may then start its next pull without leaving the link idle. At most once, maybe
  // never (a pull that fails or has nothing to fetch); from any thread, under the pull's lock:
  // it must not block or call into the pull.
  std::function<void()> on_all_issued = nullptr;
};

struct PullStats {
  uint64_t bytes = 0;
  uint64_t chunks = 0;
  double seconds = 0;
  double first_chunk_s = 0;   // latency of the first chunk (0 if none)
};

class Puller {
 public:
  Puller(Transport* transport, ObjectStore* store) : transport_(transport), store_(store) {}

  // Fetches every chunk of the object still missing in the store from `spec.sender`.
  // Returns OK when all have landed (and the sink accepted each); otherwise the first error:
  // the sink's, the sender's failure naming
  // it, DEADLINE_EXCEEDED, or NOT_FOUND with IsObjectDeleted (ObjectStore) when the object
  // was deleted on the sender or our own receiving copy was deleted mid-pull.
  // On an error it cancels its outstanding fetches (Transport::CancelFetch; the peer and
  // other pulls from it are left alone) and returns only once every fetch it started has
  // completed, so the destination is never written after Pull returns. Should cancelled
  // fetches not complete within a few seconds, it resets the connection to the sender
  // (Transport::ResetPeer), which completes them, and waits for that. Blocks.
  absl::Status Pull(const PullSpec& spec, PullStats* stats);

 private:
  Transport* transport_;
  ObjectStore* store_;
};

}  // namespace ferry::dataplane
