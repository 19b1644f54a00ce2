// A real local cluster for integration and fault tests: one ferry-coord and N ferryd
// processes on loopback, each with its own port/socket/arena in a temporary directory.
// Processes are started with fork/exec and killed with real signals.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ferry/client.h"

namespace ferry::testing {

struct ClusterOptions {
  int nodes = 2;
  std::string arena = "256MiB";
  std::vector<std::string> coord_flags;
  std::vector<std::string> ferryd_flags;
  int liveness_ms = 4000;
  // ferry-coord's --placement-rebuild-ms: 0 (no window) unless a test exercises the rebuild.
  int placement_rebuild_ms = 0;   // generous: a loaded 2-core machine must not look like a dead node
};

class LocalCluster {
 public:
  explicit LocalCluster(ClusterOptions options);
  ~LocalCluster();

  // Starts everything and waits until every node is registered and alive.
  absl::Status Start();
  // Starts one more ferryd (index = nodes so far); waits until it is alive.
  absl::StatusOr<int> AddNode();
  // Sends `signo` to node i's ferryd and reaps it (SIGKILL after 4 s). Returns its wait
  // status (see waitpid), or -1 if there was no such process.
  int Kill(int i, int signo);
  // Sends `signo` to node i's ferryd and nothing else (SIGSTOP / SIGCONT).
  void Signal(int i, int signo);
  void KillCoordinator(int signo);
  absl::Status RestartCoordinator();

  std::string socket(int i) const { return dir_ + "/n" + std::to_string(i) + ".sock"; }
  std::string coord_address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string log(int i) const { return dir_ + "/n" + std::to_string(i) + ".log"; }
  static std::string Bin(const std::string& name);

  // A connected client for node i.
  std::unique_ptr<Client> Connect(int i) const;
  // Number of alive nodes as seen from node i (0 on error).
  int AliveCount(int i) const;
  // Waits until node `observer` sees `n` alive nodes.
  absl::Status WaitAlive(int observer, int n, absl::Duration timeout) const;

  // Spawns a process; stdout+stderr go to `log`. Returns its pid.
  static pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);

 private:
  pid_t StartNode(int i);
  static int PickPort();
  // Waits until ferry-coord accepts connections (true) or exits (false, coord_ reset).
  bool CoordinatorListening(absl::Duration timeout);
  pid_t StartCoordinator();

  ClusterOptions options_;
  std::string dir_;
  int port_ = 0;
  pid_t coord_ = -1;
  std::vector<pid_t> nodes_;
};

// Deterministic test bytes.
std::vector<uint8_t> Pattern(size_t n, uint64_t seed);
uint64_t Checksum(const uint8_t* data, size_t n);

}  // namespace ferry::testing
