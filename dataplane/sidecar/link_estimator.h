// The node's link measurements, from its own pulls, as reported in every heartbeat
// (docs/architecture.md "Measurements"):
// - bandwidth: bytes / seconds of pulls of at least 8 MiB, smoothed as an EWMA
//   (new = 0.7 * old + 0.3 * sample; the first sample is taken as is);
// - latency: per-hop latency samples, max(10 us, first-chunk time - chunk / bandwidth), taken
//   only from a sender that held the whole object, once a bandwidth is known, and not on the
//   first pull from that sender (which also sets up the connection); the estimate is the
//   minimum of the last 16 samples (not an EWMA: the minimum drops the samples that paid for
//   a busy sender).
// Pure policy: no clock, no I/O.
//
// Threading: every method is thread-safe and never blocks for long.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ferry::dataplane {

struct PullSample {
  uint64_t bytes = 0;          // bytes pulled
  double seconds = 0;          // the pull's duration
  double first_chunk_s = 0;    // time to the first chunk (0: none)
  uint32_t chunk_size = 0;
  uint64_t sender = 0;
  bool sender_complete = false;   // the sender held the whole object
};

class LinkEstimator {
 public:
  static constexpr uint64_t kMinBandwidthBytes = 8u << 20;
  static constexpr size_t kLatencySamples = 16;
  static constexpr double kMinLatencyS = 10e-6;

  // Takes one successful pull into account.
  void Record(const PullSample& s);

  double bandwidth_bps() const;   // 0: not measured yet
  double latency_s() const;       // 0: not measured yet

 private:
  mutable absl::Mutex mu_;
  double bandwidth_bps_ ABSL_GUARDED_BY(mu_) = 0;
  double latency_s_ ABSL_GUARDED_BY(mu_) = 0;   // min(latency_samples_), 0 while empty
  std::deque<double> latency_samples_ ABSL_GUARDED_BY(mu_);   // newest last, at most kLatencySamples
  std::set<uint64_t> latency_peers_ ABSL_GUARDED_BY(mu_);     // senders pulled from at least once
};

}  // namespace ferry::dataplane
