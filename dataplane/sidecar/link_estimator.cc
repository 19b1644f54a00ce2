#include "dataplane/sidecar/link_estimator.h"

#include <algorithm>

namespace ferry::dataplane {

void LinkEstimator::Record(const PullSample& s) {
  if (s.seconds <= 0) return;
  absl::MutexLock lock(&mu_);
  // Bandwidth: only transfers long enough to say something about the link.
  if (s.bytes >= kMinBandwidthBytes) {
    const double sample = static_cast<double>(s.bytes) / s.seconds;
    bandwidth_bps_ = bandwidth_bps_ == 0 ? sample : 0.7 * bandwidth_bps_ + 0.3 * sample;
  }
  // Per-hop latency: time to the first chunk beyond its bytes, from a sender that already
  // held it (from a partial copy it also includes waiting for upstream).
  if (!s.sender_complete || bandwidth_bps_ <= 0 || s.first_chunk_s <= 0) return;
  const double sample =
      std::max(kMinLatencyS, s.first_chunk_s - static_cast<double>(std::min<uint64_t>(s.chunk_size, s.bytes)) / bandwidth_bps_);
  // The first pull from a peer also sets up the connection (UCX wire-up: milliseconds).
  if (latency_peers_.insert(s.sender).second) return;
  latency_samples_.push_back(sample);
  if (latency_samples_.size() > kLatencySamples) latency_samples_.pop_front();
  latency_s_ = *std::min_element(latency_samples_.begin(), latency_samples_.end());
}

double LinkEstimator::bandwidth_bps() const {
  absl::MutexLock lock(&mu_);
  return bandwidth_bps_;
}

double LinkEstimator::latency_s() const {
  absl::MutexLock lock(&mu_);
  return latency_s_;
}

}  // namespace ferry::dataplane
