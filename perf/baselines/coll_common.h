// Shared sweep driver for the peer baselines (mpi-coll, gloo-coll).
//
// Each baseline binary supplies a `Comm` (its rank, size and three tiny helper collectives)
// and one `CollCase` per collective/algorithm; `RunSweep` does the rest the same way for
// every system, so the figures are comparable:
//   - sizes min..max by a factor (nccl-tests style), f32 sum only;
//   - per iteration: reset buffers (untimed), barrier, time the collective, verify
//     element-wise (untimed); time per iteration = max over ranks;
//   - inputs are InputValue(rank, i) = (i % 1021) + rank + 1, small integers, so float32
//     sums are exact and every element can be compared with ==;
//   - a table on stdout (rank 0) and one JSON line per size (stdout and, if set, --json).
//
// Thread-safety: single-threaded; every function is called by the rank's main thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace ferry::perf {

struct SweepOptions {
  std::string min_bytes = "1K";
  std::string max_bytes = "256M";
  int factor = 4;
  int iters = 20;          // timed iterations per size (upper bound)
  int warmup = 2;          // untimed iterations per size (upper bound)
  std::string iter_bytes;  // if set: iters(size) = clamp(iter_bytes / size, 1, iters)
  std::string warmup_bytes;  // if set: warmup(size) = clamp(warmup_bytes / size, 0, warmup)
  std::string op = "sum";
  std::string dtype = "f32";
  int root = 0;
  int corrupt_rank = -1;  // hidden test hook: this rank damages one result element
  std::string json_path;  // append JSON lines here (rank 0)
  bool check = true;      // verify results (always on unless --no-check)
};

// Registers the shared sweep flags on `app`.
void AddSweepOptions(CLI::App& app, SweepOptions* opts);

// Parses "1K", "256M", "1G", "4096" (binary multiples). Returns false on garbage.
bool ParseBytes(const std::string& text, uint64_t* bytes);

// Checks the options (sizes parse, factor >= 2, op sum, dtype f32, ...). On failure writes
// a one-line reason into *why and returns false.
bool ValidateSweepOptions(const SweepOptions& opts, int nranks, std::string* why);

std::vector<uint64_t> SweepSizes(const SweepOptions& opts);
int ItersFor(const SweepOptions& opts, uint64_t bytes);
int WarmupFor(const SweepOptions& opts, uint64_t bytes);

inline float InputValue(int rank, size_t i) {
  return static_cast<float>(i % 1021) + static_cast<float>(rank + 1);
}
void FillInput(float* data, size_t count, int rank);
void FillSentinel(float* data, size_t count);  // NaN-free marker that no valid result has

// What a rank's result buffer must hold after the collective.
enum class Expect { kNothing, kRootInput, kSumOverRanks };
size_t CountErrors(const float* data, size_t count, Expect expect, int root, int nranks);

// Communication helpers the sweep itself needs, supplied by each baseline.
struct Comm {
  int rank = 0;
  int size = 1;
  std::function<void()> barrier;
  std::function<void(std::vector<double>&)> max_in_place;  // element-wise max over ranks
  std::function<uint64_t(uint64_t)> sum;                   // sum over ranks
};

// One collective/algorithm of one system.
struct CollCase {
  std::string system;  // "mpi-default", "gloo-ring_chunked", ...
  std::string coll;    // "broadcast" | "reduce" | "allreduce"
  std::string algo;    // free text describing the algorithm
  // Untimed: (re)allocate buffers / build algorithm objects for `count` floats.
  std::function<void(size_t count)> prepare;
  // Untimed: put inputs and sentinels in place before one iteration.
  std::function<void()> reset;
  // Timed: run the collective once.
  std::function<void()> run;
  // This rank's result buffer after run(), and what it must contain.
  std::function<float*()> result;
  std::function<Expect()> expect;
};

// busbw factor as in nccl-tests: 1 for broadcast/reduce, 2(n-1)/n for allreduce.
double BusBwFactor(const std::string& coll, int nranks);

// Runs the whole sweep for one case. Returns the total error count (all sizes, ranks and
// timed iterations); every rank gets the same value.
uint64_t RunSweep(const Comm& comm, const SweepOptions& opts, CollCase& c);

// Rank-0 helpers for output.
void PrintTableHeader(std::FILE* out, const std::string& system, int nranks);

}  // namespace ferry::perf
