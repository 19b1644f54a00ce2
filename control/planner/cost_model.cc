#include "control/planner/cost_model.h"

#include <algorithm>
#include <cmath>

namespace ferry::control {

uint32_t TreeDepth(uint64_t receivers, uint32_t fanout) {
  if (receivers == 0) return 0;
  if (fanout <= 1) return static_cast<uint32_t>(std::min<uint64_t>(receivers, 1u << 30));
  // Level k holds fanout^k nodes; find the smallest D with sum_{k=1..D} fanout^k >= receivers.
  uint64_t covered = 0;
  uint64_t level = 1;
  uint32_t depth = 0;
  while (covered < receivers) {
    level *= fanout;
    covered += level;
    ++depth;
  }
  return depth;
}

double PredictBroadcast(uint64_t size, uint64_t receivers, uint32_t fanout, uint32_t chunk,
                        const LinkModel& link) {
  if (receivers == 0) return 0;
  const double f = std::max<uint32_t>(fanout, 1);
  const double c = std::min<double>(chunk, std::max<uint64_t>(size, 1));
  const double depth = TreeDepth(receivers, fanout);
  const double chunks = std::ceil(static_cast<double>(std::max<uint64_t>(size, 1)) / c);
  const double b = std::max(link.bandwidth_Bps, 1.0);
  return static_cast<double>(size) * f / b + (depth - 1) * c * f / b + depth * link.latency_s +
         chunks * link.chunk_overhead_s * f;
}

uint32_t WindowFor(uint32_t chunk, const LinkModel& link) {
  // Enough in flight to cover the bandwidth-delay product twice, and at least kMinInFlight
  // bytes: each chunk is a request/rendezvous exchange whose fixed cost a deeper window
  // hides (measured on loopback TCP: 4 MiB x 3 in flight 2.4 GB/s, 4 MiB x 8 3.5 GB/s).
  constexpr double kMinInFlight = 32.0 * 1024 * 1024;
  const double want = std::max(2 * link.bandwidth_Bps * 2 * link.latency_s, kMinInFlight);
  return static_cast<uint32_t>(std::clamp(std::ceil(want / std::max<uint32_t>(chunk, 1)), 2.0, 16.0));
}

BroadcastPlan PlanBroadcast(uint64_t size, uint64_t receivers, const LinkModel& link,
                            const PlanLimits& limits) {
  BroadcastPlan best;
  best.predicted_s = -1;
  const uint32_t max_f = std::max<uint32_t>(1, std::min<uint64_t>(limits.max_fanout, std::max<uint64_t>(receivers, 1)));
  for (uint32_t f = 1; f <= max_f; ++f) {
    if (limits.fixed_fanout > 0 && f != limits.fixed_fanout) continue;
    for (uint64_t c = limits.min_chunk; c <= limits.max_chunk; c *= 2) {
      if (limits.fixed_chunk > 0 && c != limits.fixed_chunk) continue;
      double t = PredictBroadcast(size, receivers, f, static_cast<uint32_t>(c), link);
      if (best.predicted_s < 0 || t < best.predicted_s - 1e-12) {
        best = {f, static_cast<uint32_t>(c), 0, t};
      }
    }
  }
  if (limits.fixed_fanout > 0 && best.predicted_s < 0) {
    best.fanout = limits.fixed_fanout;   // more than max_fanout was asked for explicitly
    best.chunk_size = limits.fixed_chunk > 0 ? limits.fixed_chunk : limits.max_chunk;
    best.predicted_s = PredictBroadcast(size, receivers, best.fanout, best.chunk_size, link);
  }
  if (limits.fixed_chunk > 0 && best.predicted_s < 0) {
    best.chunk_size = limits.fixed_chunk;
    best.predicted_s = PredictBroadcast(size, receivers, 1, best.chunk_size, link);
  }
  best.window = WindowFor(best.chunk_size, link);
  return best;
}

}  // namespace ferry::control
