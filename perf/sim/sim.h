// Discrete-event simulation of ferry's broadcast: one source, N-1 receivers, each pulling the
// object's chunks in order from ONE sender chosen by the real BroadcastPlanner, with `window`
// chunk requests in flight; a partial copy serves chunk k as soon as it has landed
// (cut-through). Fanout, chunk size and window come from the real PlanBroadcast.
//
// Link model (see perf/sim/README.md): every node has an uplink and a downlink of rate B.
// A chunk request reaches the sender after L (or (1-x)*L, the rest of L being spent after the
// chunk was sent: latency_data_fraction); once the sender has the chunk it is queued on
// the (sender, receiver) connection, which is FIFO (one TCP stream). The sender's uplink is
// shared between its connections that have data queued, either fairly (processor sharing,
// default: what several TCP flows out of one NIC get) or FIFO in the order chunks became
// ready. A receiver pulls from one sender at a time, so its downlink (rate B, like the
// sender's uplink) never binds and is not modelled separately. The chunk lands when its
// last byte has been sent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::sim {

struct Failure {
  // Node id (1 = the source, 2..N receivers); 0 = "mid": at the failure time, the live,
  // incomplete node serving at least one receiver whose chain depth is closest to half the
  // deepest chain (an interior node of the chain/tree).
  uint64_t node = 0;
  double time_s = 0;
};

enum class LinkSharing { kFair, kFifo };

struct SimConfig {
  uint32_t nodes = 8;                   // including the source
  uint64_t size = 64ull << 20;          // object bytes
  double bandwidth_Bps = 1.25e9;        // per-node upload and download rate
  double latency_s = 50e-6;             // per-hop latency of a chunk fetch (what ferryd measures)
  // Where the per-hop latency is spent: (1-x)*L on the request before the sender sees it,
  // x*L after the chunk's last byte left the sender before it lands (propagation, the
  // receiver's completion handling). 0: all on the request.
  double latency_data_fraction = 0;
  double rpc_s = -1;                    // coordinator Acquire round trip; < 0: 2 * latency
  double detect_s = 0.05;               // failure -> SENDER_FAILED reported + RemoveNode
  double sim_chunk_overhead_s = 0;      // sender time per chunk on top of bytes/B
  double plan_chunk_overhead_s = 20e-6; // LinkModel::chunk_overhead_s given to the planner
  // What the coordinator believes (0: the simulated bandwidth / latency). ferry-coord plans
  // with --default-bandwidth/--default-latency (1.25e9, 50e-6) until nodes report measured
  // values (after pulls of >= 8 MiB), so early operations may be planned for another link.
  double plan_bandwidth_Bps = 0;
  double plan_latency_s = 0;
  uint32_t fixed_fanout = 0;            // PlanLimits overrides (0: the cost model chooses)
  uint32_t fixed_chunk = 0;
  uint32_t window = 0;                  // 0: the plan's window (at least 2, like ferryd)
  double arrival_spread_s = 0;          // receivers arrive uniformly in [0, spread]
  uint64_t seed = 1;
  LinkSharing sharing = LinkSharing::kFair;
  std::vector<Failure> failures;
};

struct SimResult {
  // Plan.
  uint32_t fanout = 0;
  uint32_t chunk = 0;
  uint32_t window = 0;
  uint64_t chunks = 0;
  double model_s = 0;            // PredictBroadcast of the plan (cost model)
  uint32_t model_depth = 0;      // TreeDepth(receivers, fanout)
  uint32_t max_depth = 0;        // deepest chain the planner actually built (first attaches)
  // Outcome.
  double completion_s = 0;       // last live receiver done (infinity if some never finished)
  double mean_completion_s = 0;
  uint32_t completed = 0;        // live receivers that completed
  uint32_t incomplete = 0;       // live receivers that never completed (stall)
  uint32_t failed_nodes = 0;
  std::vector<uint64_t> failed_ids;
  uint32_t reattaches = 0;       // SENDER_FAILED re-attaches
  uint32_t attach_waits = 0;     // Attach answered UNAVAILABLE/NOT_FOUND (retried on plan change)
  uint64_t events = 0;
  uint64_t chunk_transfers = 0;
  double wall_s = 0;
  // Bounds.
  double bound_s = 0;            // S/B
  double fill_bound_s = 0;       // S/B + (depth-1)*chunk/B + depth*L, depth = max_depth
  std::string error;             // non-empty: the run could not be set up
};

SimResult Simulate(const SimConfig& config);

}  // namespace ferry::sim
