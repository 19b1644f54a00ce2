// Cost model for pipelined broadcast trees: picks fanout, chunk size and window from the
// object size, the number of receivers and the *measured* link bandwidth and per-hop
// latency. Pure functions.
//
// Model: with fanout f a node's upload is shared by f children, so a chunk of c bytes takes
// c*f/B per hop; a tree over n receivers has depth D (D = n for a chain). A pipelined tree
// finishes in about  S*f/B + (D-1)*c*f/B + D*L + ceil(S/c)*o*f  where o is the per-chunk
// overhead. Large objects get a chain (f = 1); small ones a wider, shallower tree.
#pragma once

#include <cstdint>

namespace ferry::control {

struct LinkModel {
  double bandwidth_Bps = 1.25e9;    // bytes per second one node can send or receive
  double latency_s = 50e-6;         // per-hop latency of one chunk request
  double chunk_overhead_s = 20e-6;  // fixed cost per chunk (request, completion)
};

struct PlanLimits {
  uint32_t min_chunk = 64 * 1024;
  uint32_t max_chunk = 4 * 1024 * 1024;
  uint32_t max_fanout = 16;
  uint32_t fixed_fanout = 0;        // > 0: use this fanout (e.g. a star baseline)
  uint32_t fixed_chunk = 0;         // > 0: use this chunk size
};

struct BroadcastPlan {
  uint32_t fanout = 1;
  uint32_t chunk_size = 1 << 20;
  uint32_t window = 4;              // chunks in flight per receiver
  double predicted_s = 0;
};

// Depth of a tree with `fanout` over `receivers` nodes below one root.
uint32_t TreeDepth(uint64_t receivers, uint32_t fanout);
// Predicted completion time of a pipelined broadcast.
double PredictBroadcast(uint64_t size, uint64_t receivers, uint32_t fanout, uint32_t chunk,
                        const LinkModel& link);
BroadcastPlan PlanBroadcast(uint64_t size, uint64_t receivers, const LinkModel& link,
                            const PlanLimits& limits = {});
// Chunks to keep in flight per receiver: covers the bandwidth-delay product and at least
// 32 MiB, within [2, 16].
uint32_t WindowFor(uint32_t chunk, const LinkModel& link);

}  // namespace ferry::control
