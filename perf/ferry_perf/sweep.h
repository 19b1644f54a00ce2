// Pure helpers of the ferry-perf sweep: byte-size parsing, the size ladder, iterations per
// size and the statistics of one row. No I/O, no ferry calls; unit-tested in
// tests/perf/ferry_perf_test.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::perf {

// "4096", "1K", "64M", "1G", "1KiB", "64MB" (binary multiples; case-insensitive).
// nullopt for garbage or overflow.
std::optional<uint64_t> ParseBytes(std::string_view text);
// 1024 -> "1K", 67108864 -> "64M", 1000 -> "1000".
std::string HumanBytes(uint64_t bytes);

struct SweepPlan {
  uint64_t min_bytes = 1 << 10;
  uint64_t max_bytes = 256 << 20;
  uint64_t cluster_warmup = 64 << 20;  // broadcast before the sweep (capped at max_bytes; 0: none)
  uint64_t factor = 4;
  int iters = 5;              // timed iterations per size (upper bound)
  int warmup = 1;             // untimed iterations per size (upper bound)
  uint64_t iter_bytes = 0;    // 0: off; else iters(size) = clamp(iter_bytes/size, 1, iters)
  uint64_t warmup_bytes = 0;  // 0: off; else warmup(size) = clamp(warmup_bytes/size, 0, warmup)
};

// min, min*factor, ... while <= max (at most 64 entries). Empty if the plan is invalid.
std::vector<uint64_t> SweepSizes(const SweepPlan& plan);
int ItersFor(const SweepPlan& plan, uint64_t bytes);
int WarmupFor(const SweepPlan& plan, uint64_t bytes);

// Nearest-rank quantile, q in [0, 1]; the median of an even count averages the middle two
// (the same rule as perf/baselines). 0 for an empty sample.
double Quantile(std::vector<double> samples, double q);

// One table row / JSON line.
struct RowStats {
  double median_s = 0;
  double p90_s = 0;
  double min_s = 0;
  double algbw_Bps = 0;  // bytes / median
  double busbw_Bps = 0;  // algbw * bus-bandwidth factor (nccl-tests definition)
  double bound_s = 0;    // bound factor * bytes / link bandwidth; 0 if the link is unknown
  double time_over_bound = 0;
};
RowStats ComputeRow(const std::vector<double>& times, uint64_t bytes, double busbw_factor,
                    double bound_factor, double link_Bps);

}  // namespace ferry::perf
