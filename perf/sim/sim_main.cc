// ferry-sim: predicts ferry's broadcast, reduce and allreduce completion times over N nodes with
// the real planners.
//
//   ferry-sim --nodes 1024 --size 1GiB --bandwidth 117.6e6 --latency 150e-6
//   ferry-sim --nodes 8 --size 256MiB --fail mid@50% --json
//   ferry-sim --sweep --sizes 1MiB,64MiB,1GiB
//   ferry-sim --coll allreduce --nodes 1024 --size 256MiB -B 117.6e6 -L 150e-6 [--no-overlap]
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
#include "perf/sim/reduce_sim.h"
#include "perf/sim/sim.h"

namespace {

using ferry::sim::Failure;
using ferry::sim::ReduceSimConfig;
using ferry::sim::ReduceSimResult;
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

bool ParseLate(const std::string& text, uint32_t* count, double* seconds, std::string* err) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() == 2 && absl::SimpleAtoi(parts[0], count) && absl::SimpleAtod(parts[1], seconds) && *seconds >= 0) {
    return true;
  }
  *err = "--late: expected K:SECONDS (the last K inputs ready SECONDS late), got '" + text + "'";
  return false;
}

nlohmann::json ReduceToJson(const ReduceSimConfig& c, const ReduceSimResult& r) {
  nlohmann::json j;
  j["system"] = "ferry-sim";
  j["coll"] = c.all ? "allreduce" : "reduce";
  j["nodes"] = c.nodes;
  j["num_objects"] = r.positions;
  j["bytes"] = c.size;
  j["bandwidth_Bps"] = c.bandwidth_Bps;
  j["latency_s"] = c.latency_s;
  j["chunk_overhead_s"] = c.sim_chunk_overhead_s;
  j["late_inputs"] = c.late_inputs;
  j["late_s"] = c.late_s;
  j["chain_length"] = r.chain_length;
  j["binary_nodes"] = r.binary_nodes;
  j["height"] = r.height;
  j["max_fan_in"] = r.max_fan_in;
  j["chunk"] = r.chunk;
  j["window"] = r.window;
  j["chunks"] = r.chunks;
  j["model_s"] = r.model_s;
  if (c.all) {
    j["overlap"] = c.overlap;
    j["reduce_first"] = c.reduce_first;
    j["bcast_fanout"] = r.bcast_fanout;
    j["bcast_chunk"] = r.bcast_chunk;
    j["bcast_window"] = r.bcast_window;
    j["bcast_depth"] = r.bcast_depth;
    j["bcast_model_s"] = r.bcast_model_s;
    j["receivers"] = r.receivers;
    j["mean_completion_s"] = r.mean_completion_s;
  }
  auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  j["root_node"] = r.root_node;
  j["reduce_s"] = finite(r.reduce_s);
  j["completion_s"] = finite(r.completion_s);
  j["bound_s"] = r.bound_s;
  j["ratio_bound"] = Ratio(r.completion_s, r.bound_s);
  j["incomplete"] = r.incomplete;
  j["used"] = r.used.size();
  j["data_checked"] = r.data_checked;
  j["data_error"] = r.data_error;
  j["events"] = r.events;
  j["chunk_transfers"] = r.chunk_transfers;
  j["wall_s"] = r.wall_s;
  return j;
}

void PrintReduceHeader() {
  std::printf("%-9s %6s %10s %5s %5s %5s %6s %9s %3s %3s %9s %4s %5s %10s %12s %10s %7s %10s %5s %10s %6s\n", "coll",
              "nodes", "size", "k", "chain", "fanin", "height", "chunk", "win", "bf", "bchunk", "bwin", "bdep",
              "reduce_s", "completion_s", "bound", "x bnd", "model", "incmp", "events", "wall_s");
}

void PrintReduceRow(const ReduceSimConfig& c, const ReduceSimResult& r) {
  const std::string bchunk = c.all ? ferry::HumanBytes(r.bcast_chunk) : "-";
  std::printf("%-9s %6u %10s %5u %5u %5u %6u %9s %3u %3u %9s %4u %5u %10.6f %12.6f %10.6f %7.3f %10.6f %5u %10llu %6.2f\n",
              c.all ? (c.overlap ? "allreduce" : "allred-no") : "reduce", c.nodes,
              ferry::HumanBytes(static_cast<double>(c.size)).c_str(), r.positions, r.chain_length, r.max_fan_in,
              r.height, ferry::HumanBytes(r.chunk).c_str(), r.window, r.bcast_fanout, bchunk.c_str(), r.bcast_window,
              r.bcast_depth, r.reduce_s, r.completion_s, r.bound_s, Ratio(r.completion_s, r.bound_s), r.model_s,
              r.incomplete, static_cast<unsigned long long>(r.events), r.wall_s);
  if (!r.data_error.empty()) std::printf("  data check FAILED: %s\n", r.data_error.c_str());
}

// --coll reduce | allreduce over sizes x nodes. Returns the exit code: 1 on a stall or a data
// check failure, 2 if a run could not be set up.
int RunReduce(const ReduceSimConfig& base, const std::vector<uint64_t>& sizes, const std::vector<uint32_t>& nodes,
              bool json) {
  if (!json) PrintReduceHeader();
  int rc = 0;
  for (uint64_t sz : sizes) {
    for (uint32_t n : nodes) {
      ReduceSimConfig c = base;
      c.size = sz;
      c.nodes = n;
      if (c.num_objects > n) c.num_objects = n;   // a sweep with --num-objects
      if (c.late_inputs > n) c.late_inputs = n;
      ReduceSimResult r = ferry::sim::SimulateReduce(c);
      if (!r.error.empty()) {
        std::cerr << "error: " << r.error << "\n";
        return 2;
      }
      if (r.incomplete > 0 || !r.data_error.empty()) rc = 1;
      if (json) {
        std::cout << ReduceToJson(c, r).dump() << "\n";
      } else {
        PrintReduceRow(c, r);
      }
      std::fflush(stdout);
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry-sim: discrete-event simulation of ferry's pipelined broadcast, reduce and allreduce "
               "(real planners)"};
  SimConfig cfg;
  ReduceSimConfig rcfg;
  std::string size = "64MiB", chunk = "0", arrival = "0", fail, sharing = "fair", sizes = "1MiB,64MiB,1GiB";
  std::string coll = "broadcast", late, min_chunk = "0";
  uint32_t max_nodes = 4096;
  bool json = false, sweep = false;
  app.add_option("--coll", coll, "collective: broadcast | reduce | allreduce")->capture_default_str();
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
  app.add_option("--num-objects", rcfg.num_objects, "reduce/allreduce: inputs to combine (0: all nodes)")
      ->capture_default_str();
  app.add_option("--late", late, "reduce/allreduce: K:SECONDS, the last K inputs become ready SECONDS late");
  app.add_option("--chain-length", rcfg.chain_length, "reduce/allreduce: chain length (0: the planner's rule)")
      ->capture_default_str();
  app.add_flag("--overlap,!--no-overlap", rcfg.overlap,
               "allreduce: receivers pull result chunks while the root combines (default) or only once it is done");
  app.add_option("--min-chunk", min_chunk, "reduce/allreduce what-if: the planners' smallest chunk (0: 64 KiB)")
      ->capture_default_str();
  app.add_flag("--reduce-first", rcfg.reduce_first,
               "allreduce what-if: partial-sum streams take priority over the result's on a shared link");
  app.add_flag("--no-data-check", [&rcfg](int64_t) { rcfg.check_data = false; },
               "reduce/allreduce: skip the check that every result chunk combines exactly the used inputs");
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

  if (coll == "reduce" || coll == "allreduce") {
    if (!fails.empty() || cfg.arrival_spread_s > 0 || cfg.sharing != ferry::sim::LinkSharing::kFair) {
      std::cerr << "--fail, --arrival and --sharing fifo are broadcast-only (reduce: use --late)\n";
      return 2;
    }
    if (!late.empty() && !ParseLate(late, &rcfg.late_inputs, &rcfg.late_s, &err)) {
      std::cerr << err << "\n";
      return 2;
    }
    uint64_t min_chunk_bytes = 0;
    if (!ferry::ParseSize(min_chunk, &min_chunk_bytes).ok() || min_chunk_bytes > (1u << 20)) {
      std::cerr << "--min-chunk: invalid size '" << min_chunk << "' (at most 1 MiB)\n";
      return 2;
    }
    rcfg.min_chunk = static_cast<uint32_t>(min_chunk_bytes);
    rcfg.all = coll == "allreduce";
    rcfg.bandwidth_Bps = cfg.bandwidth_Bps;
    rcfg.latency_s = cfg.latency_s;
    rcfg.latency_data_fraction = cfg.latency_data_fraction;
    rcfg.rpc_s = cfg.rpc_s;
    rcfg.sim_chunk_overhead_s = cfg.sim_chunk_overhead_s;
    rcfg.plan_chunk_overhead_s = cfg.plan_chunk_overhead_s;
    rcfg.plan_bandwidth_Bps = cfg.plan_bandwidth_Bps;
    rcfg.plan_latency_s = cfg.plan_latency_s;
    rcfg.reduce_chunk = rcfg.bcast_chunk = cfg.fixed_chunk;
    rcfg.reduce_window = rcfg.bcast_window = cfg.window;
    rcfg.bcast_fanout = cfg.fixed_fanout;
    return RunReduce(rcfg, size_list, node_list, json);
  }
  if (coll != "broadcast") {
    std::cerr << "--coll must be broadcast, reduce or allreduce\n";
    return 2;
  }
  if (!late.empty() || rcfg.num_objects != 0 || rcfg.chain_length != 0) {
    std::cerr << "--late, --num-objects and --chain-length are for --coll reduce / allreduce\n";
    return 2;
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
