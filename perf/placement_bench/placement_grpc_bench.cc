// ferry-placement-grpc-bench: the Placement service end to end over loopback gRPC.
//
// It serves a real PlacementService (the one ferry-coord serves) on 127.0.0.1 and drives it
// with the SDK's PlacementClient. Nodes are SIMULATED: they are injected through
// PlacementService::AddNode (the test-only path; thousands of real ferryds do not fit on one
// machine), each with gpu=8, host_mem, a rack label and R ephemeral resources e0..e{R-1}
// (capacity 64). Half the GPUs are held by background leases so the free index is not uniform:
// packed (default: half the nodes full, the worst case for a single-bundle match, which walks
// the index of its rarest resource past nodes whose other demands do not fit) or, with
// --background-spread, 4 of 8 GPUs held on every node.
// For each node count it measures:
//   single   Acquire of {gpu: 1, e<k>: 1} (+ Release, untimed), one client thread: p50 / p99
//   gang8    eight such bundles in one request, no constraint: p50 / p99
//   grants/s --threads client threads (own channel each) looping Acquire + Release single
//            bundles for --seconds: grants per second
//   batch/s  the same threads looping AcquireBatch of --batch single-bundle requests, then one
//            ReleaseBatch of what was granted: grants per second (0 skips it)
// Correctness: every Acquire must grant (the cluster has room) and every Release succeed; a
// failure counts in "errors" and makes the exit code 1. After the run, ListLeases must show only
// the background leases.
//
//   ferry-placement-grpc-bench [--nodes 100,1000,4000] [--resources 1000] [--iters 2000]
//                              [--threads 16] [--seconds 3] [--batch 32]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/process.h"
#include "perf/placement_bench/percentile.h"
#include "absl/strings/str_cat.h"
#include "control/placement/placement_service.h"
#include "ferry/placement.h"

namespace ferry::control::placement {
namespace {

struct Config {
  std::vector<int> nodes = {100, 1000, 4000};
  int resources = 1000;
  int iters = 2000;
  int threads = 16;
  double seconds = 3;
  bool background_spread = false;  // background leases spread over every node (else packed)
  int batch = 32;                  // requests per AcquireBatch for batch/s; 0: not measured
};


double MicrosSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

bool AddNodes(PlacementService& service, int nodes, int resources) {
  for (int n = 1; n <= nodes; ++n) {
    ResourceMap res{{"gpu", 8}, {"host_mem", 1 << 30}};
    for (int r = 0; r < resources; ++r) res[absl::StrCat("e", r)] = 64;
    absl::Status s = service.AddNode(n, absl::StrCat("sim", n), {{"rack", absl::StrCat("rack", n / 32)}}, res);
    if (!s.ok()) {
      std::fprintf(stderr, "adding simulated node %d: %s\n", n, std::string(s.message()).c_str());
      return false;
    }
  }
  return true;
}

ferry::PlacementRequest Request(int bundles, std::mt19937& rng, int resources) {
  std::uniform_int_distribution<int> pick(0, resources - 1);
  std::vector<ResourceAmounts> b;
  for (int i = 0; i < bundles; ++i) b.push_back({{"gpu", 1}, {absl::StrCat("e", pick(rng)), 1}});
  ferry::PlacementRequest r = Gang(std::move(b));
  r.timeout = absl::Seconds(10);
  return r;
}

// Times `iters` Acquire calls of `bundles` bundles (each released after, untimed).
std::vector<double> TimeAcquire(PlacementClient& c, int bundles, const Config& cfg, int& errors) {
  std::mt19937 rng(7);
  std::vector<double> us;
  for (int i = 0; i < cfg.iters; ++i) {
    ferry::PlacementRequest r = Request(bundles, rng, cfg.resources);
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<PlacementLease> lease = c.Acquire(r);
    const double t = MicrosSince(t0);
    if (!lease.ok() || !c.Release(lease->id).ok()) {
      ++errors;
      continue;
    }
    us.push_back(t);
  }
  return us;
}

// One client's loop: unary Acquire + Release (batch 0) or AcquireBatch + ReleaseBatch. Returns
// the grants it made.
uint64_t LoadLoop(PlacementClient& c, const Config& cfg, int batch, std::mt19937& rng, const std::atomic<bool>& stop,
                  std::atomic<int>& errors) {
  uint64_t grants = 0;
  while (!stop.load()) {
    if (batch == 0) {
      absl::StatusOr<PlacementLease> lease = c.Acquire(Request(1, rng, cfg.resources));
      if (!lease.ok() || !c.Release(lease->id).ok()) {
        ++errors;
        continue;
      }
      ++grants;
      continue;
    }
    std::vector<ferry::PlacementRequest> requests;
    for (int i = 0; i < batch; ++i) requests.push_back(Request(1, rng, cfg.resources));
    absl::StatusOr<std::vector<absl::StatusOr<PlacementLease>>> got = c.AcquireBatch(requests);
    if (!got.ok()) {
      ++errors;
      continue;
    }
    std::vector<uint64_t> ids;
    for (const absl::StatusOr<PlacementLease>& l : *got) {
      if (l.ok()) ids.push_back(l->id);
      else ++errors;
    }
    if (ids.empty()) continue;
    absl::StatusOr<std::vector<absl::Status>> released = c.ReleaseBatch(ids);
    if (!released.ok()) {
      ++errors;
      continue;
    }
    for (const absl::Status& s : *released) {
      if (!s.ok()) ++errors;
    }
    grants += ids.size();
  }
  return grants;
}

double GrantsPerSecond(const std::string& address, const Config& cfg, int batch, std::atomic<int>& errors) {
  std::atomic<uint64_t> grants{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<std::unique_ptr<PlacementClient>> c = PlacementClient::Connect(address, absl::StrCat("load", t));
      if (!c.ok()) {
        ++errors;
        return;
      }
      std::mt19937 rng(100 + t);
      grants += LoadLoop(**c, cfg, batch, rng, stop, errors);
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(cfg.seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  return static_cast<double>(grants.load()) / (MicrosSince(t0) / 1e6);
}

// One node count: a fresh service and server. Returns the errors seen.
int RunOne(int nodes, const Config& cfg) {
  PlacementService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0 || !AddNodes(service, nodes, cfg.resources)) return 1;
  const std::string address = absl::StrCat("127.0.0.1:", port);
  absl::StatusOr<std::unique_ptr<PlacementClient>> c = PlacementClient::Connect(address, "bench");
  if (!c.ok()) return 1;
  // Background: half the GPUs of every node, two leases of 2 per node.
  int errors = 0;
  for (int part = 0; part < (nodes * 2 + 255) / 256; ++part) {
    const int n = std::min(256, nodes * 2 - part * 256);
    ferry::PlacementRequest r = Gang(Bundles(static_cast<size_t>(n), {{"gpu", 2}}));
    r.lease_ttl = absl::Hours(1);
    if (cfg.background_spread) r.scoring = PlacementScoring::kSpread;
    if (!(*c)->Acquire(r).ok()) ++errors;
  }
  const size_t background = (*c)->ListLeases().value_or(std::vector<PlacementLease>{}).size();
  const std::vector<double> single = TimeAcquire(**c, 1, cfg, errors);
  const std::vector<double> gang = TimeAcquire(**c, 8, cfg, errors);
  std::atomic<int> load_errors{0};
  const double rate = GrantsPerSecond(address, cfg, 0, load_errors);
  const double batch_rate = cfg.batch > 0 ? GrantsPerSecond(address, cfg, cfg.batch, load_errors) : 0;
  errors += load_errors.load();
  absl::StatusOr<std::vector<PlacementLease>> left = (*c)->ListLeases(/*all=*/true);
  if (!left.ok() || left->size() != background) ++errors;
  std::printf("%6d  %9d  %9.1f  %9.1f  %9.1f  %9.1f  %10.0f  %10.0f  %6d\n", nodes, cfg.resources,
              Percentile(single, 0.5), Percentile(single, 0.99), Percentile(gang, 0.5), Percentile(gang, 0.99), rate,
              batch_rate, errors);
  std::fflush(stdout);
  service.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return errors;
}

int Run(const Config& cfg) {
  std::printf("# ferry-placement-grpc-bench: PlacementService over loopback gRPC, SDK PlacementClient.\n"
              "# Nodes are SIMULATED (injected with PlacementService::AddNode, no ferryd). iters=%d per "
              "shape, %d client threads for %.1f s for grants/s (unary) and batch/s (AcquireBatch of %d + "
              "ReleaseBatch); background leases %s. Latencies in us.\n",
              cfg.iters, cfg.threads, cfg.seconds, cfg.batch, cfg.background_spread ? "spread" : "packed");
  std::printf("# nodes  resources  single50  single99   gang8_50   gang8_99    grants/s     batch/s  errors\n");
  int errors = 0;
  for (int n : cfg.nodes) errors += RunOne(n, cfg);
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ferry::control::placement

int main(int argc, char** argv) {
  ferry::control::placement::Config cfg;
  CLI::App app{"ferry-placement-grpc-bench: the Placement service over loopback gRPC (simulated nodes)"};
  app.add_option("--nodes", cfg.nodes, "node counts to run")->delimiter(',')->capture_default_str();
  app.add_option("--resources", cfg.resources, "ephemeral resources per node")->capture_default_str();
  app.add_option("--iters", cfg.iters, "timed Acquire calls per shape")->capture_default_str();
  app.add_option("--threads", cfg.threads, "client threads for grants/s")->capture_default_str();
  app.add_option("--seconds", cfg.seconds, "how long the grants/s load runs")->capture_default_str();
  app.add_option("--batch", cfg.batch, "requests per AcquireBatch for batch/s (0: skip)")->capture_default_str();
  app.add_flag("--background-spread", cfg.background_spread,
               "spread the background leases (4 GPUs held on every node) instead of packing them (half the "
               "nodes full)");
  CLI11_PARSE(app, argc, argv);
  // As ferry-coord does: absl's debug-build deadlock detection is not what a user's coordinator runs.
  ferry::DisableMutexDeadlockDetection();
  if (cfg.resources < 1 || cfg.iters < 1 || cfg.threads < 1 || !(cfg.seconds > 0) || cfg.batch < 0 ||
      cfg.batch > 1024) {
    std::fprintf(stderr, "--resources, --iters, --threads must be >= 1, --seconds > 0, --batch in [0, 1024]\n");
    return 2;
  }
  return ferry::control::placement::Run(cfg);
}
