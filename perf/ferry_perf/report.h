// ferry-perf output: an nccl-tests-style table on stdout, and optionally one JSON line per
// row (appended; the same shape as perf/baselines, plus bound fields) and CSV rows.
//
// JSON line: {"system":"ferry","coll":..,"bytes":..,"count":..,"dtype":..,"op":..,
//   "nodes":N,"iters":..,"warmup":..,"time_median_s":..,"time_p90_s":..,"time_min_s":..,
//   "algbw_Bps":..,"busbw_Bps":..,"bound_s":..,"time_over_bound":..,"link_Bps":..,
//   "link_source":..,"errors":..,"failed_iters":..,"times_s":[..],"run_id":..}
// bound_s and time_over_bound are 0 when the link bandwidth is unknown.
// Weight-sync rows (model-bcast, model-join) add "model":{"shape":..,"kind":..,"scale":..,
//   "tensors":..,"inflight":..,"put_s":..,"transfer_s":..,"per_tensor_us":..,
//   "receivers":[{"node":..,"join_s":..,"own_s":..,"own_over_bound":..}]} (medians over the
//   timed iterations; receivers only for model-join), and "#" detail lines under the row.
//
// Thread-safety: used by the main thread only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "perf/ferry_perf/sweep.h"

namespace ferry::perf {

// model-join: one receiver's timing, medians over the timed iterations.
struct ReceiverTiming {
  std::string node;
  double join_s = 0;  // when it started, from the first receiver's start
  double own_s = 0;   // its own time: from its join until it held every tensor
};

// What a weight-sync row reports beyond the times.
struct ModelDetails {
  std::string shape;  // DescribeShape
  std::string kind;
  double scale = 1;
  uint64_t tensors = 0;
  int inflight = 0;
  double put_s = 0;       // root's PutModel (model-bcast: part of the time; model-join: untimed)
  double transfer_s = 0;  // model-bcast: BroadcastModel; model-join: first join to last done
  std::vector<ReceiverTiming> receivers;  // model-join
};

struct Row {
  std::string system = "ferry";
  std::string coll;
  uint64_t bytes = 0;
  uint64_t count = 0;  // elements of dtype
  std::string dtype;
  std::string op;  // as printed: the --op for reducing collectives, else "none"
  int nodes = 0;
  int iters = 0;  // timed iterations that succeeded (samples in the statistics)
  int warmup = 0;
  RowStats stats;
  uint64_t errors = 0;  // wrong words + failed iterations
  int failed_iters = 0;
  std::vector<double> times_s;  // every timed iteration, in order
  double link_Bps = 0;
  std::string link_source;
  std::string run_id;
  std::optional<ModelDetails> model;
};

class Reporter {
 public:
  // Opens (appends to) the JSON and CSV files; empty paths disable them. INVALID_ARGUMENT
  // naming the path and strerror if a file cannot be opened.
  static absl::StatusOr<std::unique_ptr<Reporter>> Open(const std::string& json_path,
                                                        const std::string& csv_path);
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // "# <coll>: <description>" and the column header, on stdout.
  void TableHeader(const std::string& coll, const std::string& description);
  // One table line on stdout, plus JSON and CSV if enabled (flushed at once).
  void Emit(const Row& row);

 private:
  Reporter() = default;
  std::FILE* json_ = nullptr;
  std::FILE* csv_ = nullptr;
};

}  // namespace ferry::perf
