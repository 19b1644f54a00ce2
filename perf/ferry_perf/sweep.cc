#include "perf/ferry_perf/sweep.h"

#include <algorithm>
#include <cmath>

#include "core/names.h"

namespace ferry::perf {

std::optional<uint64_t> ParseBytes(std::string_view text) {
  uint64_t bytes = 0;   // one size syntax for the whole project (core/names.h)
  if (!ferry::ParseSize(absl::string_view(text.data(), text.size()), &bytes).ok()) return std::nullopt;
  return bytes;
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr struct {
    int shift;
    const char* unit;
  } kUnits[] = {{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}};
  for (const auto& u : kUnits) {
    const uint64_t div = uint64_t{1} << u.shift;
    if (bytes >= div && bytes % div == 0) return std::to_string(bytes / div) + u.unit;
  }
  return std::to_string(bytes);
}

std::vector<uint64_t> SweepSizes(const SweepPlan& plan) {
  std::vector<uint64_t> sizes;
  if (plan.min_bytes == 0 || plan.max_bytes < plan.min_bytes || plan.factor < 2) return sizes;
  for (uint64_t s = plan.min_bytes; s <= plan.max_bytes && sizes.size() < 64; s *= plan.factor) {
    sizes.push_back(s);
    if (s > UINT64_MAX / plan.factor) break;
  }
  return sizes;
}

int ItersFor(const SweepPlan& plan, uint64_t bytes) {
  if (plan.iter_bytes == 0) return plan.iters;
  const uint64_t n = plan.iter_bytes / std::max<uint64_t>(bytes, 1);
  return static_cast<int>(std::clamp<uint64_t>(n, 1, static_cast<uint64_t>(plan.iters)));
}

int WarmupFor(const SweepPlan& plan, uint64_t bytes) {
  if (plan.warmup_bytes == 0) return plan.warmup;
  const uint64_t n = plan.warmup_bytes / std::max<uint64_t>(bytes, 1);
  return static_cast<int>(std::min<uint64_t>(n, static_cast<uint64_t>(plan.warmup)));
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  if (q == 0.5 && v.size() % 2 == 0) return (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2.0;
  const double rank = std::ceil(q * static_cast<double>(v.size()));
  const size_t idx = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return v[std::min(idx, v.size() - 1)];
}

RowStats ComputeRow(const std::vector<double>& times, uint64_t bytes, double busbw_factor,
                    double bound_factor, double link_Bps) {
  RowStats r;
  if (times.empty()) return r;
  r.median_s = Quantile(times, 0.5);
  r.p90_s = Quantile(times, 0.9);
  r.min_s = *std::min_element(times.begin(), times.end());
  const double b = static_cast<double>(bytes);
  r.algbw_Bps = r.median_s > 0 ? b / r.median_s : 0.0;
  r.busbw_Bps = r.algbw_Bps * busbw_factor;
  r.bound_s = link_Bps > 0 ? bound_factor * b / link_Bps : 0.0;
  r.time_over_bound = r.bound_s > 0 ? r.median_s / r.bound_s : 0.0;
  return r;
}

}  // namespace ferry::perf
