// ferryd: the per-node sidecar daemon. See docs/operations.md.
#include <atomic>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "common/grpc_options.h"
#include "common/host_port.h"
#include "common/signals.h"
#include "core/names.h"
#include "common/process.h"
#include "dataplane/sidecar/arena_server.h"
#include "dataplane/sidecar/node.h"
#include "dataplane/sidecar/sidecar_service.h"
#include "dataplane/ucx/ucx_transport.h"
#include "spdlog/spdlog.h"

namespace {

struct Flags {
  std::string name;
  std::string coordinator = "127.0.0.1:7700";
  std::string socket = "/run/ferry/ferryd.sock";
  std::string arena = "1GiB";
  std::string max_pull_rate = "0";
  std::string reduce_scratch = "64MiB";
  uint32_t window = 0;
  bool prefault = true;
  bool shm = false;
  bool checksum_all = false;
  std::string token;
  std::vector<std::string> labels;
  std::string log_level = "info";
  std::string receive_copy = "ucx";
};

int Fail(const std::string& what, const absl::Status& s) {
  spdlog::error("{}: {}", what, s.ToString());
  return 1;
}

// Physical memory of this machine; 0 if unknown.
uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

// --reduce-scratch: whole scratch sets (one per reduce position building with children at once),
// at most this many bytes; the scratch is mapped and registered at start-up.
constexpr uint64_t kMaxReduceScratch = uint64_t{4} << 30;

// The flags that need more than CLI11's checks. Exit code 2 (and a message) when one is bad.
int ValidateFlags(const Flags& f, uint64_t* arena_bytes, uint64_t* rate, uint32_t* reduce_slot_sets) {
  if (absl::Status s = ferry::ValidateNodeName(f.name); !s.ok()) {
    spdlog::error("--name: {}", std::string(s.message()));
    return 2;
  }
  if (absl::StatusOr<ferry::HostPort> coord = ferry::ParseHostPort(f.coordinator); !coord.ok()) {
    spdlog::error("--coord: {}", std::string(coord.status().message()));
    return 2;
  }
  if (absl::Status s = ferry::ParseSize(f.arena, arena_bytes); !s.ok() || *arena_bytes == 0) {
    spdlog::error("--arena: invalid size '{}' (a size > 0, e.g. 4GiB)", f.arena);
    return 2;
  }
  if (const uint64_t ram = PhysicalMemoryBytes(); ram > 0 && *arena_bytes > ram) {
    spdlog::error("--arena: {} is more than this machine's {} of memory", ferry::HumanBytes(static_cast<double>(*arena_bytes)),
                  ferry::HumanBytes(static_cast<double>(ram)));
    return 2;
  }
  if (absl::Status s = ferry::ParseSize(f.max_pull_rate, rate); !s.ok()) {
    spdlog::error("--max-pull-rate: invalid rate '{}'", f.max_pull_rate);
    return 2;
  }
  constexpr uint64_t kSet = ferry::dataplane::ReduceHandler::kSetBytes;
  uint64_t scratch = 0;
  if (absl::Status s = ferry::ParseSize(f.reduce_scratch, &scratch); !s.ok() || scratch == 0 || scratch % kSet != 0 ||
                                                                      scratch > kMaxReduceScratch) {
    spdlog::error("--reduce-scratch: invalid size '{}' (a positive multiple of {} up to {}, e.g. 64MiB: one {} set "
                  "per reduce position building at once)",
                  f.reduce_scratch, ferry::HumanBytes(static_cast<double>(kSet)),
                  ferry::HumanBytes(static_cast<double>(kMaxReduceScratch)), ferry::HumanBytes(static_cast<double>(kSet)));
    return 2;
  }
  *reduce_slot_sets = static_cast<uint32_t>(scratch / kSet);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ferry::DisableMutexDeadlockDetection();
  CLI::App app{"ferryd: ferry's per-node sidecar (object store + data plane)"};
  Flags f;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  f.name = host;
  app.add_option("--name", f.name, "node name, unique in the cluster")->capture_default_str();
  app.add_option("--coord", f.coordinator, "ferry-coord address host:port")->capture_default_str();
  app.add_option("--socket", f.socket, "unix socket for local clients (also <socket>.arena, <socket>.lock)")
      ->capture_default_str();
  app.add_option("--arena", f.arena, "host arena size, e.g. 4GiB")->capture_default_str();
  app.add_option("--window", f.window, "force chunks in flight per pull (0: cost model)")->capture_default_str();
  app.add_option("--max-pull-rate", f.max_pull_rate, "cap each pull at this many bytes/s, e.g. 100MiB (0: none)")
      ->capture_default_str();
  app.add_option("--reduce-scratch", f.reduce_scratch,
                 "registered memory for children's chunks in reduces, a multiple of 8MiB (one set per position "
                 "building at once)")
      ->capture_default_str();
  app.add_option("--prefault", f.prefault, "populate the arena at start-up (no page faults on the transfer path)")
      ->capture_default_str();
  app.add_option("--ucx-receive-copy", f.receive_copy,
                 "how pulled chunks land: ucx (UCX's own receive; zero-copy on RDMA) or streaming "
                 "(ferry copies each TCP fragment with non-temporal stores; see docs/operations.md)")
      ->capture_default_str();
  app.add_flag("--checksum-all", f.checksum_all,
               "hash every object at Seal (XXH3-64) so that every copy is verified, whatever the client asked");
  app.add_flag("--shm", f.shm, "let UCX use shared memory to peers on the same host (single-host clusters)");
  app.add_option("--token", f.token, "cluster token to present to the coordinator");
  app.add_option("--label", f.labels, "node label key=value (repeatable)");
  app.add_option("--log-level", f.log_level, "trace|debug|info|warn|error")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; every bad flag is a usage error, exit 2.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(f.log_level));
  uint64_t arena_bytes = 0, rate = 0;
  uint32_t reduce_slot_sets = 0;
  if (int rc = ValidateFlags(f, &arena_bytes, &rate, &reduce_slot_sets); rc != 0) return rc;
  // The name is validated, so it cannot carry spdlog pattern flags ('%').
  spdlog::set_pattern(fmt::format("[%H:%M:%S.%e] [{}] [%^%l%$] %v", f.name));
  // SIGINT and SIGTERM are blocked here, before any thread starts (every thread inherits the
  // mask), and main takes them with sigwait once serving: no signal thread, so no thread in
  // ferryd is detached. SIGPIPE stays blocked.
  const sigset_t termination = ferry::BlockTerminationSignals();
  ferry::dataplane::NodeOptions options;
  options.max_pull_rate_Bps = static_cast<double>(rate);
  options.name = f.name;
  options.coordinator = f.coordinator;
  options.token = f.token;
  options.window_override = f.window;
  options.checksum_all = f.checksum_all;
  options.reduce_slot_sets = reduce_slot_sets;
  for (const std::string& l : f.labels) {
    std::pair<std::string, std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
    if (kv.first.empty()) {
      spdlog::error("--label '{}' must be key=value", l);
      return 2;
    }
    options.labels[kv.first] = kv.second;
  }

  absl::StatusOr<int> lock = ferry::dataplane::LockSocketPath(f.socket);
  if (!lock.ok()) return Fail("socket", lock.status());
  absl::StatusOr<std::unique_ptr<ferry::shm::Arena>> arena =
      ferry::shm::Arena::Create("ferry-arena-" + f.name, arena_bytes, f.prefault);
  if (!arena.ok()) return Fail("arena", arena.status());
  ferry::dataplane::UcxTransportOptions topts;
  topts.net_only_address = !f.shm;
  absl::StatusOr<ferry::dataplane::UcxTransportOptions::ReceiveCopy> receive_copy =
      ferry::dataplane::ParseReceiveCopy(f.receive_copy);
  if (!receive_copy.ok()) {
    spdlog::error("--ucx-receive-copy: {}", std::string(receive_copy.status().message()));
    return 2;
  }
  topts.receive_copy = *receive_copy;
  // The node id must be known before the transport exists (it is in every request).
  options.node_id = topts.self = ferry::dataplane::Node::NewNodeId();
  absl::StatusOr<std::unique_ptr<ferry::dataplane::Transport>> transport = ferry::dataplane::CreateUcxTransport(topts);
  if (!transport.ok()) return Fail("UCX transport", transport.status());
  absl::StatusOr<ferry::dataplane::MemoryRegion> region =
      (*transport)->RegisterMemory(ferry::dataplane::MemoryKind::kHost, (*arena)->base(), (*arena)->size());
  if (!region.ok()) return Fail("registering the arena", region.status());
  options.arena_region = region->id;
  absl::StatusOr<std::unique_ptr<ferry::dataplane::Node>> node_or =
      ferry::dataplane::Node::Create(options, std::move(*arena), std::move(*transport));
  if (!node_or.ok()) return Fail("starting the node", node_or.status());
  std::unique_ptr<ferry::dataplane::Node> node = std::move(*node_or);
  // A coordinator that refuses this node (name or id in use, wrong token) is an error to fix,
  // not a state to run in: refuse to start. One that does not answer yet is retried forever.
  node->Start();
  if (absl::Status reg = node->WaitRegistered(absl::Seconds(10)); !reg.ok()) {
    if (reg.code() != absl::StatusCode::kDeadlineExceeded) {
      spdlog::error("{}", std::string(reg.message()));
      node->Shutdown();
      return 2;
    }
    spdlog::warn("{}", std::string(reg.message()));
  }

  // The arena server starts first (the service checks sessions against it); until the
  // service exists, local requests fall back to the RPCs, which are not served yet either.
  std::atomic<ferry::dataplane::SidecarService*> local_service{nullptr};
  absl::StatusOr<std::unique_ptr<ferry::dataplane::ArenaServer>> arena_server = ferry::dataplane::ArenaServer::Start(
      f.socket, node->arena().fd(), node->arena().size(), node->node_id(),
      [&node](uint64_t session) { node->store().EndSession(session); },
      [&local_service](uint64_t session, const ferry::shm::LocalRequest& request) {
        ferry::dataplane::SidecarService* service = local_service.load();
        if (service == nullptr) return ferry::shm::LocalReply{ferry::shm::LocalReplyKind::kFallback, "starting"};
        return service->ServeLocal(session, request);
      });
  if (!arena_server.ok()) return Fail("arena socket", arena_server.status());

  ferry::dataplane::SidecarService service(node.get(), arena_server->get());
  local_service.store(&service);
  unlink(f.socket.c_str());
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(16 << 20);
  ferry::ApplyServerKeepalive(ferry::kKeepalive, builder);
  absl::StatusOr<ferry::StartedServer> started = ferry::StartServer(builder, "unix:" + f.socket);
  if (!started.ok()) {
    (*arena_server)->Stop();   // its thread calls into `service`, which goes first
    return Fail("serving gRPC", started.status());
  }
  std::unique_ptr<grpc::Server> server = std::move(started->server);
  // Local clients of the same group may connect (the arena socket has the same mode).
  chmod(f.socket.c_str(), 0660);
  spdlog::info("ferryd {} (id {}) serving {} with a {} arena, {} of reduce scratch ({} positions building at once), transport {}", f.name,
               node->node_id(), f.socket, ferry::HumanBytes(static_cast<double>(node->arena().size())),
               ferry::HumanBytes(static_cast<double>(uint64_t{reduce_slot_sets} * ferry::dataplane::ReduceHandler::kSetBytes)),
               reduce_slot_sets, node->transport().Name());
  // A signal that came during start-up is pending: taken at once.
  const int signo = ferry::WaitForTerminationSignal(termination);
  spdlog::info("ferryd stopping (signal {})", signo);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (*arena_server)->Stop();
  node->Shutdown();
  unlink(f.socket.c_str());
  return 0;
}
