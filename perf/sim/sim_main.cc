// ferry-sim: predicts ferry's broadcast completion time over N nodes with the real planner.
//
//   ferry-sim --nodes 1024 --size 1GiB --bandwidth 117.6e6 --latency 150e-6
//   ferry-sim --nodes 8 --size 256MiB --fail mid@50% --json
//   ferry-sim --sweep --sizes 1MiB,64MiB,1GiB
//
// See perf/sim/README.md for the model and what it ignores.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/names.h"
#include "nlohmann/json.hpp"
#include "perf/sim/sim.h"

namespace {

using ferry::sim::Failure;
using ferry::sim::SimConfig;
using ferry::sim::SimResult;

struct FailSpec {
  uint64_t node = 0;      // 0: "mid"
  double value = 0;       // seconds, or a fraction of the no-failure completion
  bool fraction = false;
};

bool ParseFail(const std::string& text, std::vector<FailSpec>* out, std::string* err) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(item, '@');
    if (parts.size() != 2) {
      *err = "--fail: expected node@time, got '" + std::string(item) + "'";
      return false;
    }
    FailSpec f;
    if (parts[0] != "mid" && (!absl::SimpleAtoi(parts[0], &f.node) || f.node == 0)) {
      *err = "--fail: node must be an id >= 1 or 'mid', got '" + parts[0] + "'";
      return false;
    }
    std::string t = parts[1];
    if (!t.empty() && t.back() == '%') {
      f.fraction = true;
      t.pop_back();
    }
    if (!absl::SimpleAtod(t, &f.value) || f.value < 0) {
      *err = "--fail: bad time '" + parts[1] + "'";
      return false;
    }
    if (f.fraction) f.value /= 100;
    out->push_back(f);
  }
  return true;
}

bool ParseArrival(const std::string& text, double* spread, std::string* err) {
  if (text == "0" || text == "all" || text == "zero") {
    *spread = 0;
    return true;
  }
  const std::string prefix = "uniform:";
  if (text.rfind(prefix, 0) == 0 && absl::SimpleAtod(text.substr(prefix.size()), spread) && *spread >= 0) return true;
  *err = "--arrival: expected 0 or uniform:SECONDS, got '" + text + "'";
  return false;
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

nlohmann::json ToJson(const SimConfig& c, const SimResult& r) {
  nlohmann::json j;
  j["system"] = "ferry-sim";
  j["nodes"] = c.nodes;
  j["bytes"] = c.size;
  j["bandwidth_Bps"] = c.bandwidth_Bps;
  j["latency_s"] = c.latency_s;
  j["latency_split"] = c.latency_data_fraction;
  j["plan_bandwidth_Bps"] = c.plan_bandwidth_Bps > 0 ? c.plan_bandwidth_Bps : c.bandwidth_Bps;
  j["plan_latency_s"] = c.plan_latency_s > 0 ? c.plan_latency_s : c.latency_s;
  j["rpc_s"] = c.rpc_s < 0 ? 2 * c.latency_s : c.rpc_s;
  j["sharing"] = c.sharing == ferry::sim::LinkSharing::kFair ? "fair" : "fifo";
  j["arrival_spread_s"] = c.arrival_spread_s;
  j["fanout"] = r.fanout;
  j["chunk"] = r.chunk;
  j["window"] = r.window;
  j["chunks"] = r.chunks;
  j["depth"] = r.max_depth;
  j["model_depth"] = r.model_depth;
  j["completion_s"] = std::isfinite(r.completion_s) ? nlohmann::json(r.completion_s) : nlohmann::json();
  j["mean_completion_s"] = r.mean_completion_s;
  j["bound_s"] = r.bound_s;
  j["fill_bound_s"] = r.fill_bound_s;
  j["model_s"] = r.model_s;
  j["ratio_bound"] = Ratio(r.completion_s, r.bound_s);
  j["ratio_fill"] = Ratio(r.completion_s, r.fill_bound_s);
  j["ratio_model"] = Ratio(r.completion_s, r.model_s);
  j["completed"] = r.completed;
  j["incomplete"] = r.incomplete;
  j["failed"] = r.failed_ids;
  j["reattaches"] = r.reattaches;
  j["attach_waits"] = r.attach_waits;
  j["events"] = r.events;
  j["chunk_transfers"] = r.chunk_transfers;
  j["wall_s"] = r.wall_s;
  return j;
}

void PrintHeader() {
  std::printf("%6s %10s %3s %8s %3s %5s %12s %10s %10s %10s %7s %7s %7s %5s %7s\n", "nodes", "size", "f", "chunk",
              "win", "depth", "completion_s", "S/B", "fill_bnd", "model", "x S/B", "x fill", "x model", "incmp",
              "wall_s");
}

void PrintRow(const SimConfig& c, const SimResult& r) {
  std::printf("%6u %10s %3u %8s %3u %5u %12.6f %10.6f %10.6f %10.6f %7.3f %7.3f %7.3f %5u %7.2f\n", c.nodes,
              ferry::HumanBytes(static_cast<double>(c.size)).c_str(), r.fanout,
              ferry::HumanBytes(r.chunk).c_str(), r.window, r.max_depth, r.completion_s, r.bound_s, r.fill_bound_s,
              r.model_s, Ratio(r.completion_s, r.bound_s), Ratio(r.completion_s, r.fill_bound_s),
              Ratio(r.completion_s, r.model_s), r.incomplete, r.wall_s);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry-sim: discrete-event simulation of ferry's pipelined broadcast (real planner)"};
  SimConfig cfg;
  std::string size = "64MiB", chunk = "0", arrival = "0", fail, sharing = "fair", sizes = "1MiB,64MiB,1GiB";
  uint32_t max_nodes = 4096;
  bool json = false, sweep = false;
  app.add_option("-n,--nodes", cfg.nodes, "nodes including the source (2..)")->capture_default_str();
  app.add_option("-s,--size", size, "object size (e.g. 1GiB)")->capture_default_str();
  app.add_option("-B,--bandwidth", cfg.bandwidth_Bps, "per-node upload = download bytes/s")->capture_default_str();
  app.add_option("-L,--latency", cfg.latency_s, "per-hop latency of a chunk request, seconds")->capture_default_str();
  app.add_option("--latency-split", cfg.latency_data_fraction,
                 "fraction of the latency spent on the data path after sending (0: all on the request)")
      ->capture_default_str();
  app.add_option("--rpc", cfg.rpc_s, "coordinator Acquire round trip, seconds (<0: 2*latency)")->capture_default_str();
  app.add_option("--detect", cfg.detect_s, "failure detection delay, seconds")->capture_default_str();
  app.add_option("--chunk-overhead", cfg.sim_chunk_overhead_s, "simulated sender time per chunk, seconds")
      ->capture_default_str();
  app.add_option("--plan-overhead", cfg.plan_chunk_overhead_s, "LinkModel::chunk_overhead_s given to the planner")
      ->capture_default_str();
  app.add_option("--plan-bandwidth", cfg.plan_bandwidth_Bps, "bandwidth the planner is told (0: --bandwidth)")
      ->capture_default_str();
  app.add_option("--plan-latency", cfg.plan_latency_s, "latency the planner is told (0: --latency)")
      ->capture_default_str();
  app.add_option("--fanout", cfg.fixed_fanout, "fix the fanout (0: cost model)")->capture_default_str();
  app.add_option("--chunk", chunk, "fix the chunk size (0: cost model)")->capture_default_str();
  app.add_option("--window", cfg.window, "chunk requests in flight (0: the plan's, at least 2)")
      ->capture_default_str();
  app.add_option("--arrival", arrival, "receiver arrivals: 0 (all at t=0) or uniform:SECONDS")->capture_default_str();
  app.add_option("--seed", cfg.seed, "random seed for arrivals")->capture_default_str();
  app.add_option("--sharing", sharing, "uplink sharing among a sender's connections: fair | fifo")
      ->capture_default_str();
  app.add_option("--fail", fail, "node@time[,...]: node id or 'mid'; time in seconds or NN% of the no-failure run");
  app.add_flag("--json", json, "print one JSON line per run instead of a table row");
  app.add_flag("--sweep", sweep, "N in {8,16,...,--max-nodes} x --sizes");
  app.add_option("--sizes", sizes, "sizes for --sweep")->capture_default_str();
  app.add_option("--max-nodes", max_nodes, "largest N for --sweep")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string err;
  if (!ParseArrival(arrival, &cfg.arrival_spread_s, &err)) {
    std::cerr << err << "\n";
    return 2;
  }
  if (sharing == "fair") {
    cfg.sharing = ferry::sim::LinkSharing::kFair;
  } else if (sharing == "fifo") {
    cfg.sharing = ferry::sim::LinkSharing::kFifo;
  } else {
    std::cerr << "--sharing must be fair or fifo\n";
    return 2;
  }
  uint64_t chunk_bytes = 0;
  if (!ferry::ParseSize(chunk, &chunk_bytes).ok() || chunk_bytes > (1u << 30)) {
    std::cerr << "--chunk: invalid size '" << chunk << "'\n";
    return 2;
  }
  cfg.fixed_chunk = static_cast<uint32_t>(chunk_bytes);
  std::vector<FailSpec> fails;
  if (!fail.empty() && !ParseFail(fail, &fails, &err)) {
    std::cerr << err << "\n";
    return 2;
  }

  std::vector<uint64_t> size_list;
  for (absl::string_view s : absl::StrSplit(sweep ? sizes : size, ',', absl::SkipEmpty())) {
    uint64_t v = 0;
    if (!ferry::ParseSize(s, &v).ok() || v == 0) {
      std::cerr << "invalid size '" << s << "'\n";
      return 2;
    }
    size_list.push_back(v);
  }
  std::vector<uint32_t> node_list;
  if (sweep) {
    for (uint32_t n = 8; n <= max_nodes; n *= 2) node_list.push_back(n);
  } else {
    node_list.push_back(cfg.nodes);
  }

  if (!json) PrintHeader();
  int rc = 0;
  for (uint64_t sz : size_list) {
    for (uint32_t n : node_list) {
      SimConfig c = cfg;
      c.size = sz;
      c.nodes = n;
      SimResult base;
      if (!fails.empty()) {
        base = ferry::sim::Simulate(c);   // the no-failure run, for NN% times and the delta
        if (!base.error.empty()) {
          std::cerr << "error: " << base.error << "\n";
          return 2;
        }
        for (const FailSpec& f : fails) {
          c.failures.push_back(Failure{f.node, f.fraction ? f.value * base.completion_s : f.value});
        }
      }
      SimResult r = ferry::sim::Simulate(c);
      if (!r.error.empty()) {
        std::cerr << "error: " << r.error << "\n";
        return 2;
      }
      if (r.incomplete > 0) rc = 1;
      if (json) {
        nlohmann::json j = ToJson(c, r);
        if (!fails.empty()) {
          nlohmann::json fj = nlohmann::json::array();
          for (const Failure& f : c.failures) fj.push_back({{"node", f.node}, {"time_s", f.time_s}});
          j["fail_spec"] = fj;
          j["detect_s"] = c.detect_s;
          j["baseline_s"] = base.completion_s;
          j["delta_s"] = std::isfinite(r.completion_s) ? nlohmann::json(r.completion_s - base.completion_s)
                                                       : nlohmann::json();
        }
        std::cout << j.dump() << "\n";
      } else {
        if (!fails.empty()) {
          PrintRow(c, base);
          std::printf("  ^ no failure; with failures:");
          for (size_t i = 0; i < c.failures.size(); ++i) {
            std::printf(" node %llu @ %.6fs", static_cast<unsigned long long>(i < r.failed_ids.size() ? r.failed_ids[i] : c.failures[i].node),
                        c.failures[i].time_s);
          }
          std::printf(" (detect %.3fs), %u re-attaches, %u attach waits, delta %+.6fs\n", c.detect_s, r.reattaches,
                      r.attach_waits, r.completion_s - base.completion_s);
        }
        PrintRow(c, r);
      }
      std::fflush(stdout);
    }
  }
  return rc;
}
