// The unit ferry-perf measures: one collective over the nodes of a running ferry cluster,
// driven through libferry. The sweep (ferry_perf_main.cc) calls, per size and iteration,
//   Prepare(size, iter)   untimed: create the input (e.g. the root Puts a fresh object)
//   Run(iter)             timed by the collective itself; returns seconds
//   Verify(iter)          untimed: compare every node's result with the expected bytes
//   Cleanup(iter)         untimed: drop pins, Delete the iteration's objects
// Cleanup runs after every Prepare, also when Run or Verify failed. Iterations never overlap
// and each uses its own object keys, so a late Delete cannot touch the next iteration.
// reduce / allreduce are further subclasses (reduce_collectives.cc: reduces() true,
// BoundFactor 2(N-1)/N for allreduce).
//
// Thread-safety: a Collective is driven by one thread; Run may use worker threads
// internally but joins them before it returns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/client.h"
#include "perf/ferry_perf/model_shape.h"

namespace ferry::perf {

struct Row;

// One ferryd of the cluster under test.
struct PerfNode {
  std::string socket;
  std::string name;  // ferryd's --name (from Client::Status); what Broadcast results name
  uint64_t arena_bytes = 0;  // its arena's capacity (from Client::Status)
  std::unique_ptr<Client> client;
};

// What every collective shares. Owned by main; outlives every Collective.
struct PerfContext {
  std::vector<PerfNode> nodes;                  // index = node number; node 0 is the root
  std::string ns = "default";                   // namespace of every object ferry-perf creates
  std::string run_id;                           // random, makes keys unique across runs
  DType dtype = DType::kF32;                    // recorded in the objects' metadata
  ReduceOp op = ReduceOp::kSum;                 // reduce, allreduce (--op)
  absl::Duration timeout = absl::Seconds(120);  // per Get / Broadcast
  int stream_inflight = 2;  // p2p-stream: Gets in flight
  int corrupt_node = -1;  // test hook: the verifier treats this node's first word as wrong
  // Weight-sync collectives (model-bcast, model-join; model_collectives.cc).
  ModelKind model = ModelKind::kMix;
  double model_scale = 1.0;
  uint64_t model_seed = 0;
  int inflight = 16;                                   // per-object calls outstanding per node
  absl::Duration join_stagger = absl::Milliseconds(150);  // model-join: between receivers' joins
  bool verbose = false;

  int size() const { return static_cast<int>(nodes.size()); }
};

// Connects one Client per socket (in order) and learns each node's name. UNAVAILABLE naming
// the socket if a ferryd does not answer.
[[nodiscard]] absl::StatusOr<std::vector<PerfNode>> ConnectNodes(
    const std::vector<std::string>& sockets, absl::Duration rpc_timeout);

class Collective {
 public:
  virtual ~Collective() = default;

  // "p2p", "broadcast", "broadcast-get": the "coll" field of the JSON lines.
  virtual std::string name() const = 0;
  // One line for the table header: what is timed.
  virtual std::string description() const = 0;
  // Whether --op applies (reduce, allreduce); the table prints "none" otherwise.
  virtual bool reduces() const { return false; }
  // Fewest nodes the collective needs.
  virtual int min_nodes() const { return 2; }
  // Lower bound on the time, as a multiple of S/B: 1 for broadcast, reduce and p2p,
  // 2(N-1)/N for allreduce.
  virtual double BoundFactor(int nodes) const = 0;
  // nccl-tests' busbw = algbw * factor: 1 for broadcast, reduce and p2p, 2(N-1)/N allreduce.
  virtual double BusBwFactor(int nodes) const = 0;

  // Non-zero: the collective moves this many bytes and ignores the size sweep (one row).
  virtual uint64_t fixed_bytes() const { return 0; }
  // Adds what the collective measured beyond the times to the size's row (called once per
  // row, after its last iteration) and forgets it.
  virtual void AddDetails(Row*) {}

  [[nodiscard]] virtual absl::Status Prepare(uint64_t bytes, int iter) = 0;
  // Runs the collective once; returns its duration in seconds.
  [[nodiscard]] virtual absl::StatusOr<double> Run(int iter) = 0;
  // Number of wrong 8-byte words over all checked nodes (a missing copy counts all its
  // words, a per-node failure reported by ferry at least one). An error status means the
  // check itself could not run.
  [[nodiscard]] virtual absl::StatusOr<uint64_t> Verify(int iter) = 0;
  virtual void Cleanup(int iter) = 0;
};

// model-bcast / model-join (model_collectives.cc); nullptr for another name.
std::unique_ptr<Collective> MakeModelCollective(std::string_view name, PerfContext* ctx);

// reduce / allreduce (reduce_collectives.cc); nullptr for another name.
std::unique_ptr<Collective> MakeReduceCollective(std::string_view name, PerfContext* ctx);

// Names MakeCollective accepts, in the order of the default --coll.
std::vector<std::string> KnownCollectives();
// INVALID_ARGUMENT for an unknown name.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Collective>> MakeCollective(std::string_view name,
                                                                         PerfContext* ctx);

}  // namespace ferry::perf

namespace ferry::perf {

// Writes "ferry-perf: <line>\n" to stderr; on a terminal it first clears the progress line.
void LogLine(std::string_view line);

}  // namespace ferry::perf
