// The percentile both placement benchmarks report: the sample at rank floor(p * n) of the
// sorted samples (0 for none).
#pragma once

#include <algorithm>
#include <vector>

namespace ferry::control::placement {

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace ferry::control::placement
