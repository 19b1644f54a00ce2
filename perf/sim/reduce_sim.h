// Discrete-event simulation of ferry's reduce and allreduce on a dynamic tree (the data plane
// only). The tree is the real ReducePlanner's (PlanReduce for chain length, chunk and window,
// as ReduceCollective::CreatePlanner computes them; inputs take positions through InputReady
// in the order they become ready). Each non-leaf position's node pulls every child's partial
// sum chunk by chunk, `window` requests in flight per (child -> parent) stream; the child serves
// chunk c once it has combined it (cut-through); a position has combined chunk c when chunk c
// of every child has landed (its own input is local and complete; the add costs nothing). The
// root's partial sum is the result.
//
// AllReduce: the result is then broadcast to every other node with the real PlanBroadcast and
// BroadcastPlanner (as the broadcast sim, perf/sim/sim.h, does), either after the root is done
// (no overlap: what ReduceCollective does today) or, with `overlap`, from the moment the root
// is placed: receivers pull result chunk c as soon as the root has combined it (the root's
// result object is served as a partial copy).
//
// Link model (perf/sim/README.md): every node has an uplink and a downlink of rate B. A stream
// (one pull: sender -> receiver, FIFO like its TCP connection) with data queued is "active"; it
// runs at min(B / active streams on the sender's uplink, B / active streams on the receiver's
// downlink). That is fair sharing at both ends: exact when every stream at a link is limited by
// that link (a chain; a binary node's downlink shared by its two children; a node carrying one
// reduce and one broadcast stream each way), but not work-conserving when a stream is held back
// at its other end (the share it cannot use is not handed to the others). A request reaches the
// sender after (1-x)*L, a chunk lands x*L after its last byte was sent (latency_data_fraction).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::sim {

struct ReduceSimConfig {
  bool all = false;                     // AllReduce (else Reduce)
  uint32_t nodes = 8;                   // candidate inputs, one per node
  uint32_t num_objects = 0;             // k inputs to combine (0: all)
  uint64_t size = 64ull << 20;          // bytes per input
  double bandwidth_Bps = 1.25e9;        // per-node upload and download rate
  double latency_s = 50e-6;             // per-hop latency of a chunk request
  double latency_data_fraction = 0;     // as SimConfig: part of L spent after the chunk was sent
  double rpc_s = -1;                    // input ready -> instruction at its node (<0: 2 * latency)
  double sim_chunk_overhead_s = 0;      // sender time per chunk on top of bytes/B
  double plan_chunk_overhead_s = 20e-6; // LinkModel::chunk_overhead_s given to the planners
  double plan_bandwidth_Bps = 0;        // what the planners are told (0: the simulated value)
  double plan_latency_s = 0;
  // Reduce plan overrides (0: the planner's). The chunk is capped at 1 MiB and the window
  // clamped to [1, 4] as ReduceCollective does.
  uint32_t chain_length = 0;
  uint32_t min_chunk = 0;               // PlanLimits::min_chunk for both planners (0: its default)
  uint32_t reduce_chunk = 0;
  uint32_t reduce_window = 0;
  // AllReduce's broadcast of the result (0: PlanBroadcast's; the window at least 2 as ferryd).
  uint32_t bcast_fanout = 0;
  uint32_t bcast_chunk = 0;
  uint32_t bcast_window = 0;
  bool overlap = true;                  // AllReduce: receivers pull while the root combines
  // What-if (no such data path exists): on a link that carries both, partial-sum streams are
  // served first (strict priority) and the result's streams share what they leave.
  bool reduce_first = false;
  // Late inputs: the last `late_inputs` nodes' inputs become ready `late_s` after the others.
  uint32_t late_inputs = 0;
  double late_s = 0;
  // Checks that every chunk of the result combines exactly the planner's Used() inputs (a
  // 64-bit tag per chunk of each interior position; skipped above 2^24 such tags).
  bool check_data = true;
};

struct ReduceSimResult {
  // Reduce plan (as the coordinator would make it).
  uint32_t positions = 0;        // k
  uint32_t chain_length = 0;
  uint32_t binary_nodes = 0;
  uint32_t height = 0;           // edges on the longest leaf-to-root path
  uint32_t max_fan_in = 0;
  uint32_t chunk = 0;
  uint32_t window = 0;
  uint64_t chunks = 0;
  double model_s = 0;            // PredictReduce of the plan
  // Broadcast plan (AllReduce).
  uint32_t bcast_fanout = 0;
  uint32_t bcast_chunk = 0;
  uint32_t bcast_window = 0;
  uint32_t bcast_depth = 0;      // deepest chain the broadcast planner built
  double bcast_model_s = 0;      // PredictBroadcast of its plan
  // Outcome.
  uint64_t root_node = 0;
  double reduce_s = 0;           // the root's partial sum complete (infinity if never)
  double completion_s = 0;       // Reduce: reduce_s; AllReduce: the last node holding the result
  double mean_completion_s = 0;  // AllReduce: mean over the receivers
  uint32_t receivers = 0;        // AllReduce: nodes other than the root that pull the result
  uint32_t completed = 0;
  uint32_t incomplete = 0;       // receivers (or the root) that never finished: a stall
  std::vector<uint64_t> used;    // the planner's Used() at the end
  bool planner_done = false;     // ReducePlanner::Done() after the root's PositionDone
  bool data_checked = false;
  std::string data_error;        // non-empty: a chunk of the result is not the sum of `used`
  uint64_t events = 0;
  uint64_t chunk_transfers = 0;
  double wall_s = 0;
  // Bounds: Reduce S/B; AllReduce 2(N-1)/N * S/B (each node sends and receives that much).
  double bound_s = 0;
  std::string error;             // non-empty: the run could not be set up (or an internal error)
};

ReduceSimResult SimulateReduce(const ReduceSimConfig& config);

}  // namespace ferry::sim
