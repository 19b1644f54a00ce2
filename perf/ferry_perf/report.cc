#include "perf/ferry_perf/report.h"

#include <algorithm>
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

// "#" lines under a weight-sync row: the shape, the phases, per-tensor cost, receivers.
void PrintModelDetails(const Row& row) {
  const ModelDetails& m = *row.model;
  const double n = static_cast<double>(std::max<uint64_t>(m.tensors, 1));
  const double bound = row.stats.bound_s;
  std::printf("#   shape %s\n", m.shape.c_str());
  std::printf("#   %llu tensors, %d in flight: put %.3f s (%.0f us/tensor), %s %.3f s (%.0f us/tensor)\n",
              static_cast<unsigned long long>(m.tensors), m.inflight, m.put_s, m.put_s / n * 1e6,
              m.receivers.empty() ? "broadcast" : "first join to last done", m.transfer_s,
              m.transfer_s / n * 1e6);
  for (const ReceiverTiming& r : m.receivers) {
    const double done = r.join_s + r.own_s, done_bound = r.join_s + bound;
    std::printf("#   %-6s join %7.3f s  own %8.3f s (%s x S/B)  done %8.3f s vs join+S/B %8.3f s (%s)\n",
                r.node.c_str(), r.join_s, r.own_s, Fixed(bound > 0 ? r.own_s / bound : 0, 2).c_str(),
                done, done_bound, Fixed(done_bound > 0 ? done / done_bound : 0, 2).c_str());
  }
}

nlohmann::ordered_json ModelJson(const Row& row) {
  const ModelDetails& m = *row.model;
  nlohmann::ordered_json j;
  j["shape"] = m.shape;
  j["kind"] = m.kind;
  j["scale"] = m.scale;
  j["tensors"] = m.tensors;
  j["inflight"] = m.inflight;
  j["put_s"] = m.put_s;
  j["transfer_s"] = m.transfer_s;
  j["per_tensor_us"] = row.stats.median_s / static_cast<double>(std::max<uint64_t>(m.tensors, 1)) * 1e6;
  nlohmann::ordered_json rs = nlohmann::ordered_json::array();
  for (const ReceiverTiming& r : m.receivers) {
    nlohmann::ordered_json x;
    x["node"] = r.node;
    x["join_s"] = r.join_s;
    x["own_s"] = r.own_s;
    x["own_over_bound"] = row.stats.bound_s > 0 ? r.own_s / row.stats.bound_s : 0.0;
    rs.push_back(x);
  }
  if (!m.receivers.empty()) j["receivers"] = rs;
  return j;
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
  if (row.model) PrintModelDetails(row);
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
    if (row.model) j["model"] = ModelJson(row);
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
