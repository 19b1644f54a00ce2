// ferry-coord: the control plane. See docs/operations.md.
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "common/grpc_options.h"
#include "common/host_port.h"
#include "core/names.h"
#include "common/process.h"
#include "common/signals.h"
#include "control/placement/placement_service.h"
#include "control/service/coordinator_service.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  ferry::DisableMutexDeadlockDetection();
  CLI::App app{"ferry-coord: ferry's control plane (membership, object directory, planning)"};
  std::string listen = "0.0.0.0:7700";
  uint32_t heartbeat_ms = 500, liveness_ms = 3000, fixed_fanout = 0;
  std::string inline_max = "64KiB", fixed_chunk = "0", token, log_level = "info";
  double default_bw = 1.25e9, default_lat = 50e-6, chunk_overhead = 20e-6;
  app.add_option("--listen", listen, "address:port to serve gRPC on")->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval nodes must keep")->capture_default_str();
  app.add_option("--liveness-ms", liveness_ms, "silence after which a node is declared dead")->capture_default_str();
  uint32_t coalesce_ms = 20;
  app.add_option("--membership-coalesce-ms", coalesce_ms,
                 "membership changes within this long of the last one sent are merged into one delta (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  app.add_option("--inline-max", inline_max, "objects up to this size travel inline through the coordinator")
      ->capture_default_str();
  app.add_option("--token", token, "cluster token nodes must present (empty: none)");
  app.add_option("--fixed-fanout", fixed_fanout, "force the broadcast fanout (0: from the cost model)")
      ->capture_default_str();
  app.add_option("--fixed-chunk", fixed_chunk, "force the chunk size (0: from the cost model)")->capture_default_str();
  app.add_option("--default-bandwidth", default_bw, "bytes/s assumed until nodes report measurements")
      ->capture_default_str();
  app.add_option("--default-latency", default_lat, "per-hop seconds assumed until measured")->capture_default_str();
  app.add_option("--chunk-overhead", chunk_overhead,
                 "per-chunk seconds the cost model charges (request turnaround, completions)")
      ->capture_default_str();
  uint32_t placement_rebuild_ms = 5000;
  std::string placement_holders;
  app.add_option("--placement-rebuild-ms", placement_rebuild_ms,
                 "after a start, placement grants nothing for this long while holders re-report their leases "
                 "(ReportLeases); 0: no window, leases of a previous coordinator are lost")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--placement-holders", placement_holders,
                 "file where placement records the holders that have leases, so that a restart can close its "
                 "rebuild window once they all re-reported (empty: the window runs its full length)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; every bad flag is a usage error, exit 2.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("[%H:%M:%S.%e] [coord] [%^%l%$] %v");
  // Everything below that refuses to start exits 2, before anything is bound.
  absl::StatusOr<ferry::HostPort> listen_at = ferry::ParseHostPort(listen, ferry::EmptyHost::kAllow);
  if (!listen_at.ok()) {
    spdlog::error("--listen: {}", std::string(listen_at.status().message()));
    return 2;
  }
  if (listen_at->host.empty()) listen_at->host = "0.0.0.0";  // ":7700" = every interface
  if (heartbeat_ms == 0 || liveness_ms == 0 || heartbeat_ms >= liveness_ms) {
    spdlog::error("--heartbeat-ms ({}) and --liveness-ms ({}) must be > 0, and the heartbeat shorter than the "
                  "liveness timeout (several heartbeats long)",
                  heartbeat_ms, liveness_ms);
    return 2;
  }
  // Before any thread starts (gRPC's included): every thread inherits the mask, and main
  // takes the signal below with sigwait, so no thread is detached.
  const sigset_t termination = ferry::BlockTerminationSignals();

  ferry::control::CoordinatorOptions options;
  options.heartbeat_interval = absl::Milliseconds(heartbeat_ms);
  options.liveness_timeout = absl::Milliseconds(liveness_ms);
  options.membership_coalesce = absl::Milliseconds(coalesce_ms);
  uint64_t inline_bytes = 0, chunk = 0;
  if (absl::Status s = ferry::ParseSize(inline_max, &inline_bytes); !s.ok()) {
    spdlog::error("--inline-max: {}", std::string(s.message()));
    return 2;
  }
  if (absl::Status s = ferry::ParseSize(fixed_chunk, &chunk); !s.ok() || chunk > (1u << 30)) {
    spdlog::error("--fixed-chunk: invalid size '{}'", fixed_chunk);
    return 2;
  }
  if (inline_bytes > (4u << 20)) {
    spdlog::error("--inline-max must be at most 4 MiB (gRPC message size)");
    return 2;
  }
  if (!(default_bw > 0) || !(default_lat >= 0) || !(chunk_overhead >= 0) || default_lat > 10 || chunk_overhead > 10) {
    spdlog::error("--default-bandwidth must be > 0, --default-latency and --chunk-overhead in [0, 10] s");
    return 2;
  }
  options.inline_max_bytes = static_cast<uint32_t>(inline_bytes);
  options.token = token;
  options.default_link.bandwidth_Bps = default_bw;
  options.default_link.latency_s = default_lat;
  options.default_link.chunk_overhead_s = chunk_overhead;
  options.limits.fixed_fanout = fixed_fanout;
  options.limits.fixed_chunk = static_cast<uint32_t>(chunk);

  ferry::control::CoordinatorService service(options);
  // Placement (docs/protocol.md "Placement service") on the same server; its nodes are the
  // coordinator's members.
  ferry::control::placement::PlacementServiceOptions placement_options;
  placement_options.rebuild = absl::Milliseconds(placement_rebuild_ms);
  placement_options.holders_file = placement_holders;
  ferry::control::placement::PlacementService placement(placement_options);
  service.coordinator().SetMembershipListener(
      [&placement](const ferry::proto::NodeInfo& node, bool alive) { placement.OnMembership(node, alive); });
  // Static groups made from a gang grant; revoked when their lease ends.
  service.coordinator().SetLeaseNodes(
      [&placement](uint64_t lease, const std::string& holder) { return placement.LeaseNodes(lease, holder); });
  placement.SetLeaseEndListener([&service](uint64_t lease, const std::string& why) {
    service.coordinator().OnLeaseEnded(lease, why);
  });
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.RegisterService(&placement);
  builder.SetMaxReceiveMessageSize(16 << 20);
  ferry::ApplyServerKeepalive(ferry::kKeepalive, builder);
  absl::StatusOr<ferry::StartedServer> started = ferry::StartServer(builder, listen_at->ToString());
  if (!started.ok()) {
    spdlog::error("{}", std::string(started.status().message()));
    return 2;
  }
  std::unique_ptr<grpc::Server> server = std::move(started->server);
  spdlog::info("ferry-coord listening on {} (port {})", listen_at->ToString(), started->port);
  const int signo = ferry::WaitForTerminationSignal(termination);
  spdlog::info("ferry-coord stopping (signal {})", signo);
  placement.Shutdown();
  service.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  spdlog::info("ferry-coord stopped");
  return 0;
}
