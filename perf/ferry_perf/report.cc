#include "perf/ferry_perf/report.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace ferry::perf {
namespace {

std::FILE* OpenAppend(const std::string& path, absl::Status* status) {
  if (path.empty()) return nullptr;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) {
    *status = absl::InvalidArgumentError(
        absl::StrCat("cannot open ", path, " for appending: ", std::strerror(errno)));
  }
  return f;
}

// "-" for a quantity that is unknown (0).
std::string Fixed(double value, int decimals) {
  if (value <= 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Reporter>> Reporter::Open(const std::string& json_path,
                                                         const std::string& csv_path) {
  std::unique_ptr<Reporter> r(new Reporter());
  absl::Status status;
  r->json_ = OpenAppend(json_path, &status);
  if (!status.ok()) return status;
  r->csv_ = OpenAppend(csv_path, &status);
  if (!status.ok()) return status;
  if (r->csv_ != nullptr && std::ftell(r->csv_) == 0) {
    std::fprintf(r->csv_,
                 "system,coll,bytes,count,dtype,op,nodes,iters,time_median_s,time_p90_s,"
                 "algbw_Bps,busbw_Bps,bound_s,time_over_bound,errors\n");
  }
  return r;
}

Reporter::~Reporter() {
  if (json_ != nullptr) std::fclose(json_);
  if (csv_ != nullptr) std::fclose(csv_);
}

void Reporter::TableHeader(const std::string& coll, const std::string& description) {
  std::printf("#\n# %s: %s\n", coll.c_str(), description.c_str());
  std::printf("# %12s %12s %5s %5s %12s %12s %9s %9s %12s %7s %9s\n", "size(B)", "count", "type",
              "op", "time(us)", "p90(us)", "algbw", "busbw", "bound(us)", "t/bound", "errors");
  std::printf("# %12s %12s %5s %5s %12s %12s %9s %9s %12s %7s %9s\n", "", "(elements)", "", "",
              "(median)", "", "(GB/s)", "(GB/s)", "(S/B)", "", "");
  std::fflush(stdout);
}

void Reporter::Emit(const Row& row) {
  const RowStats& s = row.stats;
  std::printf("  %12llu %12llu %5s %5s %12s %12s %9s %9s %12s %7s %9llu\n",
              static_cast<unsigned long long>(row.bytes),
              static_cast<unsigned long long>(row.count), row.dtype.c_str(), row.op.c_str(),
              Fixed(s.median_s * 1e6, 1).c_str(), Fixed(s.p90_s * 1e6, 1).c_str(),
              Fixed(s.algbw_Bps / 1e9, 4).c_str(), Fixed(s.busbw_Bps / 1e9, 4).c_str(),
              Fixed(s.bound_s * 1e6, 1).c_str(), Fixed(s.time_over_bound, 2).c_str(),
              static_cast<unsigned long long>(row.errors));
  std::fflush(stdout);
  if (json_ != nullptr) {
    nlohmann::ordered_json j;
    j["system"] = row.system;
    j["coll"] = row.coll;
    j["bytes"] = row.bytes;
    j["count"] = row.count;
    j["dtype"] = row.dtype;
    j["op"] = row.op;
    j["nodes"] = row.nodes;
    j["iters"] = row.iters;
    j["warmup"] = row.warmup;
    j["time_median_s"] = s.median_s;
    j["time_p90_s"] = s.p90_s;
    j["time_min_s"] = s.min_s;
    j["algbw_Bps"] = s.algbw_Bps;
    j["busbw_Bps"] = s.busbw_Bps;
    j["bound_s"] = s.bound_s;
    j["time_over_bound"] = s.time_over_bound;
    j["link_Bps"] = row.link_Bps;
    j["link_source"] = row.link_source;
    j["errors"] = row.errors;
    j["failed_iters"] = row.failed_iters;
    j["times_s"] = row.times_s;
    j["run_id"] = row.run_id;
    std::fprintf(json_, "%s\n",
                 j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    std::fflush(json_);
  }
  if (csv_ != nullptr) {
    std::fprintf(csv_, "%s,%s,%llu,%llu,%s,%s,%d,%d,%.9g,%.9g,%.6g,%.6g,%.9g,%.4g,%llu\n",
                 row.system.c_str(), row.coll.c_str(), static_cast<unsigned long long>(row.bytes),
                 static_cast<unsigned long long>(row.count), row.dtype.c_str(), row.op.c_str(),
                 row.nodes, row.iters, s.median_s, s.p90_s, s.algbw_Bps, s.busbw_Bps, s.bound_s,
                 s.time_over_bound, static_cast<unsigned long long>(row.errors));
    std::fflush(csv_);
  }
}

}  // namespace ferry::perf
