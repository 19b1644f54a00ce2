// ferry-placement-bench: latency of PlacementManager::Acquire and ::Release, in process.
//
// For each node count it builds a cluster where every node advertises gpu=8, gpu_mem, host_mem,
// nic_bw, a rack label, and each of R ephemeral resources e0..e{R-1} (capacity 64) lands on a
// --density fraction of the nodes. A background load of long-lived leases takes about
// --background of the GPUs, so the free index is not uniform. Then, for each request shape, it
// times `iters` rounds of Acquire (must grant at once) + Release of that lease:
//   single  one bundle {gpu: 1, e<k>: 1}, k random
//   gang8   eight such bundles, no constraint
//   gang8d  eight bundles on different nodes
//   rack8   eight bundles on one rack (same label value)
// Correctness: at --density 1 every Acquire must grant, and after the run every node's free
// amounts equal those before it (no leak); a failure counts in the "errors" column and makes the
// exit code 1. At lower densities a request may name a resource no node (or no rack) has: those
// clean refusals are counted as "refused" and not timed.
//
//   ferry-placement-bench [--nodes 100,1000,4000] [--resources 1000] [--iters 20000]
//                         [--density 1.0] [--background 0.5] [--seed 1]
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/process.h"
#include "perf/placement_bench/percentile.h"
#include "absl/strings/str_cat.h"
#include "control/placement/placement_manager.h"

namespace ferry::control::placement {
namespace {

struct Config {
  std::vector<int> nodes = {100, 1000, 4000};
  int resources = 1000;
  int iters = 20000;
  double density = 1.0;
  double background = 0.5;
  uint32_t seed = 1;
};

const absl::Time kNow = absl::FromUnixSeconds(1'000'000);


// Builds the cluster; returns false on a setup error (printed).
bool Build(PlacementManager& m, int nodes, const Config& cfg, std::mt19937& rng) {
  std::uniform_real_distribution<double> coin(0, 1);
  for (int n = 1; n <= nodes; ++n) {
    ResourceMap res{{"gpu", 8}, {"gpu_mem", 8 * 80}, {"host_mem", 1024}, {"nic_bw", 400}};
    for (int r = 0; r < cfg.resources; ++r) {
      if (cfg.density >= 1.0 || coin(rng) < cfg.density) res[absl::StrCat("e", r)] = 64;
    }
    auto ev = m.AddNode(n, {{"rack", absl::StrCat("rack", n / 32)}, {"host", absl::StrCat("h", n)}}, res, kNow);
    if (!ev.ok()) {
      std::fprintf(stderr, "AddNode %d: %s\n", n, ev.status().ToString().c_str());
      return false;
    }
  }
  // Background load: random long-lived single-GPU leases.
  const int64_t leases = static_cast<int64_t>(cfg.background * nodes * 8);
  for (int64_t i = 0; i < leases; ++i) {
    PlacementRequest r;
    r.holder = "background";
    r.alternatives.push_back({{{{"gpu", 1 + static_cast<int64_t>(rng() % 2)}}}, Constraint::kNone, ""});
    r.scoring = (i % 2) ? Scoring::kPack : Scoring::kSpread;
    r.lease_ttl = absl::Hours(1000);
    (void)m.Acquire(std::move(r), kNow);
  }
  return true;
}

// Free amount of every (node, resource), for the leak check.
std::vector<int64_t> FreeVector(const PlacementManager& m) {
  std::vector<int64_t> out;
  for (const NodeResourcesView& n : m.ClusterResources()) {
    for (const auto& [name, a] : n.resources) out.push_back(a.available);
  }
  return out;
}

PlacementRequest Shape(const std::string& shape, int resources, std::mt19937& rng) {
  PlacementRequest r;
  r.holder = "bench";
  r.deadline = kNow + absl::Seconds(10);
  r.lease_ttl = absl::Seconds(30);
  PlacementAlternative alt;
  const int bundles = shape == "single" ? 1 : 8;
  for (int b = 0; b < bundles; ++b) {
    alt.bundles.push_back({{"gpu", 1}, {absl::StrCat("e", rng() % resources), 1}});
  }
  if (shape == "gang8d") alt.constraint = Constraint::kDifferentNodes;
  if (shape == "rack8") {
    alt.constraint = Constraint::kSameLabelValue;
    alt.label_key = "rack";
  }
  r.alternatives.push_back(std::move(alt));
  return r;
}

struct Row {
  std::vector<double> acquire_us, release_us;  // granted rounds only
  int refused = 0;  // a clean refusal or a wait (only with --density < 1: a resource may be missing)
  int errors = 0;   // anything else, or any non-grant at density 1
};

Row RunShape(PlacementManager& m, const std::string& shape, const Config& cfg, std::mt19937& rng) {
  Row row;
  for (int i = 0; i < cfg.iters; ++i) {
    PlacementRequest r = Shape(shape, cfg.resources, rng);
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<AcquireResult> res = m.Acquire(std::move(r), kNow);
    const auto t1 = std::chrono::steady_clock::now();
    if (!res.ok() || !res->lease) {
      const bool clean = !res.ok() ? (res.status().code() == absl::StatusCode::kNotFound ||
                                      res.status().code() == absl::StatusCode::kFailedPrecondition)
                                   : m.Cancel(res->queued, "bench", kNow).ok();
      ++(clean && cfg.density < 1.0 ? row.refused : row.errors);
      continue;
    }
    absl::StatusOr<PlacementEvents> rel = m.Release(res->lease->id, "bench", kNow);
    const auto t2 = std::chrono::steady_clock::now();
    if (!rel.ok()) ++row.errors;
    row.acquire_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    row.release_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
  }
  return row;
}

void PrintRow(int nodes, const Config& cfg, const std::string& shape, const Row& row) {
  double total = 0;
  for (size_t i = 0; i < row.acquire_us.size(); ++i) total += row.acquire_us[i] + row.release_us[i];
  const double per_s = total > 0 ? 1e6 * static_cast<double>(row.acquire_us.size()) / total : 0;
  std::printf("%6d %6d %8s %7d %9.1f %9.1f %9.1f %9.1f %10.0f %7d %7d\n", nodes, cfg.resources, shape.c_str(),
              cfg.iters, Percentile(row.acquire_us, 0.5), Percentile(row.acquire_us, 0.99),
              Percentile(row.release_us, 0.5), Percentile(row.release_us, 0.99), per_s, row.refused, row.errors);
}

int Run(const Config& cfg) {
  std::printf("# ferry-placement-bench: in-process Acquire + Release, density=%.3f background=%.2f seed=%u\n",
              cfg.density, cfg.background, cfg.seed);
  std::printf("%6s %6s %8s %7s %9s %9s %9s %9s %10s %7s %7s\n", "nodes", "res", "shape", "iters", "acq_p50",
              "acq_p99", "rel_p50", "rel_p99", "grants/s", "refused", "errors");
  std::printf("%6s %6s %8s %7s %9s %9s %9s %9s %10s %7s %7s\n", "", "", "", "", "(us)", "(us)", "(us)", "(us)",
              "(1 thread)", "", "");
  int failures = 0;
  for (int nodes : cfg.nodes) {
    std::mt19937 rng(cfg.seed);
    PlacementManager m;
    if (!Build(m, nodes, cfg, rng)) return 1;
    const std::vector<int64_t> before = FreeVector(m);
    for (const std::string shape : {"single", "gang8", "gang8d", "rack8"}) {
      Row row = RunShape(m, shape, cfg, rng);
      PrintRow(nodes, cfg, shape, row);
      failures += row.errors;
    }
    if (FreeVector(m) != before || !m.internal_error().ok()) {
      std::printf("# nodes=%d: free amounts changed over the run (leak) or internal error: %s\n", nodes,
                  m.internal_error().ToString().c_str());
      ++failures;
    }
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ferry::control::placement

int main(int argc, char** argv) {
  ferry::control::placement::Config cfg;
  CLI::App app{"ferry-placement-bench: in-process PlacementManager Acquire/Release latency"};
  app.add_option("--nodes", cfg.nodes, "node counts")->delimiter(',');
  app.add_option("--resources", cfg.resources, "ephemeral resources")->check(CLI::Range(1, 100000));
  app.add_option("--iters", cfg.iters, "Acquire+Release rounds per shape")->check(CLI::Range(1, 10000000));
  app.add_option("--density", cfg.density, "fraction of nodes holding each ephemeral resource")
      ->check(CLI::Range(0.0001, 1.0));
  app.add_option("--background", cfg.background, "fraction of GPUs held by background leases")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--seed", cfg.seed, "random seed");
  CLI11_PARSE(app, argc, argv);
  // As ferry-coord does: absl's debug-build deadlock detection is not what a user's coordinator runs.
  ferry::DisableMutexDeadlockDetection();
  return ferry::control::placement::Run(cfg);
}
