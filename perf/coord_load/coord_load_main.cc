// ferry-coord-load: a coordinator load test. Registers N fake nodes (one process, gRPC callback
// API, a few threads) with a real ferry-coord over loopback gRPC, keeps their heartbeats going,
// and reports the coordinator's threads, RSS, CPU per heartbeat, and for membership changes the
// time until every node has the new membership and the bytes sent. See docs/operations.md.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "perf/coord_load/coord_process.h"
#include "perf/coord_load/load_test.h"

namespace ferry::perf {
namespace {

struct Flags {
  std::string coord_bin;
  std::string address;
  int coord_pid = 0;
  std::vector<uint64_t> nodes = {4096};
  std::vector<std::string> coord_args;
  std::string coord_log;
  std::string json;
  double max_coord_rss_gib = 6;
  double register_timeout_s = 300, steady_s = 10, change_timeout_s = 60;
  LoadOptions load;
};

std::string DefaultCoordBin(const char* argv0) {
  // ferry-coord sits next to this binary in build/bin.
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string dir = n > 0 ? std::string(self, n) : std::string(argv0);
  dir = dir.substr(0, dir.rfind('/') + 1);
  return dir + "ferry-coord";
}

struct ChangeSummary {
  double p50_ms = 0, max_ms = 0, bytes = 0, bytes_per_node = 0, cpu_ms = 0;
};

ChangeSummary Summarize(const LoadResult& r) {
  ChangeSummary s;
  std::vector<double> p50, maxes;
  double bytes = 0, per_node = 0, cpu = 0;
  for (const ChangeResult& c : r.changes) {
    p50.push_back(c.p50_ms);
    maxes.push_back(c.max_ms);
    bytes += static_cast<double>(c.bytes);
    per_node += static_cast<double>(c.bytes) / static_cast<double>(std::max<uint64_t>(c.live_after, 1));
    cpu += c.coord_cpu_s * 1e3;
  }
  if (r.changes.empty()) return s;
  const double k = static_cast<double>(r.changes.size());
  std::sort(p50.begin(), p50.end());
  s.p50_ms = p50[p50.size() / 2];   // median over changes of the per-change median over nodes
  s.max_ms = *std::max_element(maxes.begin(), maxes.end());
  s.bytes = bytes / k;
  s.bytes_per_node = per_node / k;
  s.cpu_ms = cpu / k;
  return s;
}

void PrintHeader() {
  std::printf("#\n# %7s %5s %8s %8s %7s %8s %8s %8s %6s %9s %9s %11s %9s %9s %6s\n", "nodes", "chans", "welc_s",
              "conv_s", "threads", "rss_MiB", "hb/s", "us/hb", "chgs", "chg_p50", "chg_max", "bytes/chg", "B/node",
              "cpu_ms", "errors");
  std::printf("# %7s %5s %8s %8s %7s %8s %8s %8s %6s %9s %9s %11s %9s %9s %6s\n", "", "", "(s)", "(s)", "(coord)",
              "(coord)", "", "(coord)", "", "(ms)", "(ms)", "(all nodes)", "(per chg)", "(per chg)", "");
}

void PrintRow(const LoadResult& r) {
  const ChangeSummary s = Summarize(r);
  const double hb_rate = r.steady_s > 0 ? static_cast<double>(r.steady_heartbeats) / r.steady_s : 0;
  const double us_per_hb = r.steady_heartbeats > 0 ? r.steady_coord_cpu_s / static_cast<double>(r.steady_heartbeats) * 1e6 : 0;
  std::printf("  %7llu %5u %8.2f %8.2f %7llu %8.1f %8.0f %8.2f %6zu %9.2f %9.2f %11.0f %9.0f %9.1f %6llu\n",
              static_cast<unsigned long long>(r.nodes), r.channels, r.welcome_s, r.converge_s,
              static_cast<unsigned long long>(r.coord_after_register.threads),
              static_cast<double>(r.coord_after_register.rss_bytes) / (1 << 20), hb_rate, us_per_hb, r.changes.size(),
              s.p50_ms, s.max_ms, s.bytes, s.bytes_per_node, s.cpu_ms, static_cast<unsigned long long>(r.errors));
  if (!r.registered) {
    std::printf("#   registration incomplete: %llu of %llu welcomed; %.1f MiB in %llu messages received so far\n",
                static_cast<unsigned long long>(r.welcomed), static_cast<unsigned long long>(r.nodes),
                static_cast<double>(r.register_bytes) / (1 << 20), static_cast<unsigned long long>(r.register_messages));
  }
  for (const std::string& e : r.error_messages) std::printf("#   error: %s\n", e.c_str());
  std::fflush(stdout);
}

nlohmann::json ToJson(const LoadResult& r) {
  nlohmann::json changes = nlohmann::json::array();
  for (const ChangeResult& c : r.changes) {
    changes.push_back({{"kind", c.kind}, {"ok", c.ok}, {"nodes", c.live_after}, {"p50_ms", c.p50_ms},
                       {"max_ms", c.max_ms}, {"bytes", c.bytes}, {"messages", c.messages},
                       {"coord_cpu_s", c.coord_cpu_s}});
  }
  const ChangeSummary s = Summarize(r);
  return {{"nodes", r.nodes},
          {"channels", r.channels},
          {"heartbeat_interval_ms", r.heartbeat_interval_ms},
          {"registered", r.registered},
          {"welcomed", r.welcomed},
          {"welcome_s", r.welcome_s},
          {"converge_s", r.converge_s},
          {"register_bytes", r.register_bytes},
          {"register_messages", r.register_messages},
          {"register_coord_cpu_s", r.register_coord_cpu_s},
          {"coord_threads", r.coord_after_register.threads},
          {"coord_rss_bytes", r.coord_after_register.rss_bytes},
          {"client_threads", r.client_threads},
          {"steady_s", r.steady_s},
          {"steady_heartbeats", r.steady_heartbeats},
          {"steady_coord_cpu_s", r.steady_coord_cpu_s},
          {"steady_client_cpu_s", r.steady_client_cpu_s},
          {"steady_membership_messages", r.steady_membership_messages},
          {"coord_cpu_us_per_heartbeat",
           r.steady_heartbeats ? r.steady_coord_cpu_s / static_cast<double>(r.steady_heartbeats) * 1e6 : 0.0},
          {"change_p50_ms", s.p50_ms},
          {"change_max_ms", s.max_ms},
          {"change_bytes", s.bytes},
          {"change_bytes_per_node", s.bytes_per_node},
          {"change_coord_cpu_ms", s.cpu_ms},
          {"changes", changes},
          {"errors", r.errors},
          {"error_messages", r.error_messages}};
}

// One size against one coordinator (started here unless --address names one).
LoadResult RunOne(const Flags& f, uint64_t nodes) {
  LoadOptions opts = f.load;
  opts.nodes = nodes;
  opts.register_timeout = absl::Seconds(f.register_timeout_s);
  opts.steady = absl::Seconds(f.steady_s);
  opts.change_timeout = absl::Seconds(f.change_timeout_s);
  std::unique_ptr<CoordProcess> coord;
  std::string address = f.address;
  pid_t pid = f.coord_pid;
  const std::string log = f.coord_log.empty() ? absl::StrCat("/tmp/ferry-coord-load-", getpid(), "-", nodes, ".log")
                                              : absl::StrCat(f.coord_log, ".", nodes);
  if (address.empty()) {
    absl::StatusOr<std::unique_ptr<CoordProcess>> started = CoordProcess::Start(f.coord_bin, f.load.token, f.coord_args, log);
    if (!started.ok()) {
      LoadResult r;
      r.nodes = nodes;
      r.errors = 1;
      r.error_messages.push_back(std::string(started.status().message()));
      return r;
    }
    coord = std::move(*started);
    address = coord->address();
    pid = coord->pid();
  }
  const uint64_t max_rss = static_cast<uint64_t>(f.max_coord_rss_gib * (1ULL << 30));
  auto health = [&coord, pid, max_rss]() -> absl::Status {
    if (coord) {
      if (absl::Status s = coord->CheckAlive(); !s.ok()) return s;
    }
    if (pid == 0) return absl::OkStatus();
    absl::StatusOr<ProcSample> s = SampleProc(pid);
    if (!s.ok()) return s.status();
    if (s->rss_bytes > max_rss) {
      return absl::ResourceExhaustedError(absl::StrFormat("RSS %.2f GiB exceeds --max-coord-rss-gib %.2f; stopped",
                                                          static_cast<double>(s->rss_bytes) / (1ULL << 30),
                                                          static_cast<double>(max_rss) / (1ULL << 30)));
    }
    return absl::OkStatus();
  };
  LoadRun run(opts, address, pid, health);
  LoadResult r = run.Run();
  if (coord) {
    // Stop the coordinator first: closing N sessions on a live one is N membership changes.
    if (absl::Status s = coord->Stop(); !s.ok() && r.errors == 0) {
      ++r.errors;
      r.error_messages.push_back(absl::StrCat("stopping the coordinator: ", s.message()));
    }
    if (r.errors == 0) {
      unlink(log.c_str());
    } else {
      r.error_messages.push_back(absl::StrCat("coordinator log kept: ", log));
    }
  }
  run.Teardown();
  return r;
}

}  // namespace
}  // namespace ferry::perf

int main(int argc, char** argv) {
  using ferry::perf::Flags;
  Flags f;
  f.coord_bin = ferry::perf::DefaultCoordBin(argv[0]);
  f.load.seed = std::random_device{}() | 1;
  CLI::App app{"ferry-coord-load: load test of ferry-coord with fake nodes over real gRPC"};
  app.add_option("--coord-bin", f.coord_bin, "ferry-coord to start on a free loopback port")->capture_default_str();
  app.add_option("--address", f.address, "use this running coordinator instead (host:port)");
  app.add_option("--coord-pid", f.coord_pid, "with --address: its pid, to sample threads, RSS and CPU");
  app.add_option("--coord-arg", f.coord_args, "extra argument for the started ferry-coord (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--coord-log", f.coord_log, "started coordinator's log file prefix (default /tmp/ferry-coord-load-<pid>-<N>.log)");
  app.add_option("--nodes", f.nodes, "node counts to sweep, e.g. 256,1024,4096")->delimiter(',')->capture_default_str();
  app.add_option("--nodes-per-channel", f.load.nodes_per_channel, "Session streams per gRPC channel (HTTP/2 connection)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--register-window", f.load.register_window,
                 "nodes registered per wave; a wave waits until every node has the full membership")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--register-timeout-s", f.register_timeout_s, "give up registering after this long")->capture_default_str();
  app.add_option("--steady-s", f.steady_s, "steady heartbeat window for CPU per heartbeat")->capture_default_str();
  app.add_option("--changes", f.load.changes, "membership changes (leave, join, leave, ...)")->capture_default_str();
  app.add_option("--change-timeout-s", f.change_timeout_s, "give up on a change after this long")->capture_default_str();
  app.add_option("--token", f.load.token, "cluster token (passed to the started coordinator too)");
  app.add_option("--dp-address-bytes", f.load.dp_address_bytes, "size of each fake node's dp_address")
      ->capture_default_str()->check(CLI::Range(13, 65536));
  app.add_option("--seed", f.load.seed, "seed for node ids and the nodes that leave");
  app.add_option("--max-coord-rss-gib", f.max_coord_rss_gib, "abort when the coordinator's RSS exceeds this")
      ->capture_default_str();
  app.add_option("--json", f.json, "also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  const uint64_t max_nodes = *std::max_element(f.nodes.begin(), f.nodes.end());
  const uint64_t channels = (max_nodes + f.load.changes) / f.load.nodes_per_channel + 1;
  absl::StatusOr<uint64_t> fds = ferry::perf::EnsureFdLimit(channels * 4 + 256);
  if (!fds.ok()) {
    std::fprintf(stderr, "ferry-coord-load: %s\n", std::string(fds.status().message()).c_str());
    return 2;
  }
  std::printf("# ferry-coord-load: %s, nodes %s, %u per channel, register window %u, steady %.0f s, %u changes, "
              "dp_address %u B, seed %llu, fd limit %llu\n",
              f.address.empty() ? f.coord_bin.c_str() : f.address.c_str(),
              absl::StrJoin(f.nodes, ",").c_str(), f.load.nodes_per_channel, f.load.register_window, f.steady_s,
              f.load.changes, f.load.dp_address_bytes, static_cast<unsigned long long>(f.load.seed),
              static_cast<unsigned long long>(*fds));
  ferry::perf::PrintHeader();
  nlohmann::json runs = nlohmann::json::array();
  uint64_t errors = 0;
  for (uint64_t n : f.nodes) {
    ferry::perf::LoadResult r = ferry::perf::RunOne(f, n);
    ferry::perf::PrintRow(r);
    runs.push_back(ferry::perf::ToJson(r));
    errors += r.errors;
  }
  std::printf("# errors: %llu\n", static_cast<unsigned long long>(errors));
  if (!f.json.empty()) {
    std::ofstream out(f.json);
    out << nlohmann::json{{"tool", "ferry-coord-load"}, {"seed", f.load.seed}, {"runs", runs}}.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "ferry-coord-load: cannot write %s\n", f.json.c_str());
      return 2;
    }
  }
  return errors == 0 ? 0 : 1;
}
