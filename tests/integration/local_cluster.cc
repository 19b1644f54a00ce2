#include "tests/integration/local_cluster.h"

#include <signal.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"

namespace ferry::testing {

std::string LocalCluster::Bin(const std::string& name) {
  const char* dir = std::getenv("FERRY_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/" + name;
}

pid_t LocalCluster::Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    // If the test process dies (an assertion abort, a sanitizer report), its daemons die too.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Loopback cluster: TCP over lo, unless the caller chose otherwise.
    setenv("UCX_TLS", "tcp,self", 0);
    setenv("UCX_NET_DEVICES", "lo", 0);
    setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

LocalCluster::LocalCluster(ClusterOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/ferry-test.XXXXXX";
  dir_ = mkdtemp(tmpl);
  port_ = PickPort();
}

// Below Linux's ephemeral range (32768+), so that an outgoing connection of some other test
// does not hold the port; ferry-coord refuses a busy port (no SO_REUSEPORT), and Start retries.
int LocalCluster::PickPort() {
  std::random_device rd;
  return 20000 + static_cast<int>(rd() % 12000);
}

bool LocalCluster::CoordinatorListening(absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    int status = 0;
    if (waitpid(coord_, &status, WNOHANG) == coord_) {   // exited: the port was busy, say
      coord_ = -1;
      return false;
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (up) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;   // still starting: let WaitAlive decide
}

LocalCluster::~LocalCluster() {
  for (size_t i = 0; i < nodes_.size(); ++i) Kill(static_cast<int>(i), SIGTERM);
  KillCoordinator(SIGTERM);
  std::error_code ec;
  if (std::getenv("FERRY_KEEP_TEST_DIR") == nullptr) std::filesystem::remove_all(dir_, ec);
}

pid_t LocalCluster::StartCoordinator() {
  std::vector<std::string> argv = {Bin("ferry-coord"), "--listen", coord_address(), "--liveness-ms",
                                   std::to_string(options_.liveness_ms), "--heartbeat-ms", "200",
                                   "--placement-rebuild-ms", std::to_string(options_.placement_rebuild_ms)};
  argv.insert(argv.end(), options_.coord_flags.begin(), options_.coord_flags.end());
  return Spawn(argv, dir_ + "/coord.log");
}

pid_t LocalCluster::StartNode(int i) {
  std::vector<std::string> argv = {Bin("ferryd"), "--name", absl::StrCat("n", i), "--coord", coord_address(),
                                   "--socket", socket(i), "--arena", options_.arena, "--log-level", "info"};
  argv.insert(argv.end(), options_.ferryd_flags.begin(), options_.ferryd_flags.end());
  return Spawn(argv, log(i));
}

absl::Status LocalCluster::Start() {
  for (int attempt = 0;; ++attempt) {
    coord_ = StartCoordinator();
    if (CoordinatorListening(absl::Seconds(10)) || attempt == 7) break;
    port_ = PickPort();
  }
  for (int i = 0; i < options_.nodes; ++i) nodes_.push_back(StartNode(i));
  return WaitAlive(0, options_.nodes, absl::Seconds(60));
}

absl::StatusOr<int> LocalCluster::AddNode() {
  const int i = static_cast<int>(nodes_.size());
  nodes_.push_back(StartNode(i));
  if (absl::Status s = WaitAlive(i, i + 1, absl::Seconds(60)); !s.ok()) return s;
  return i;
}

int LocalCluster::Kill(int i, int signo) {
  if (i < 0 || i >= static_cast<int>(nodes_.size()) || nodes_[i] <= 0) return -1;
  kill(nodes_[i], signo);
  int status = -1;
  for (int t = 0; t < 100; ++t) {
    if (waitpid(nodes_[i], &status, WNOHANG) != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (t == 80) kill(nodes_[i], SIGKILL);
  }
  nodes_[i] = -1;
  return status;
}

void LocalCluster::Signal(int i, int signo) {
  if (i >= 0 && i < static_cast<int>(nodes_.size()) && nodes_[i] > 0) kill(nodes_[i], signo);
}

void LocalCluster::KillCoordinator(int signo) {
  if (coord_ <= 0) return;
  kill(coord_, signo);
  int status = 0;
  for (int t = 0; t < 100 && waitpid(coord_, &status, WNOHANG) == 0; ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (t == 80) kill(coord_, SIGKILL);
  }
  coord_ = -1;
}

absl::Status LocalCluster::RestartCoordinator() {
  // The nodes know this port: retry it (a connection of another process may hold it briefly).
  for (int attempt = 0; attempt < 8; ++attempt) {
    coord_ = StartCoordinator();
    if (CoordinatorListening(absl::Seconds(10))) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return absl::UnavailableError(absl::StrCat("ferry-coord did not start on port ", port_, "; log ", dir_, "/coord.log"));
}

std::unique_ptr<Client> LocalCluster::Connect(int i) const {
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(socket(i));
  return c.ok() ? std::move(*c) : nullptr;
}

int LocalCluster::AliveCount(int i) const {
  std::unique_ptr<Client> c = Connect(i);
  if (!c) return 0;
  absl::StatusOr<NodeStatus> st = c->Status();
  if (!st.ok() || !st->coordinator_connected) return 0;
  int n = 0;
  for (const NodeInfo& info : st->cluster) n += info.alive ? 1 : 0;
  return n;
}

absl::Status LocalCluster::WaitAlive(int observer, int n, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (AliveCount(observer) == n) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("cluster in ", dir_, " did not reach ", n, " alive nodes"));
}

std::vector<uint8_t> Pattern(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&v[i], &x, 8);
  }
  for (; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed);
  return v;
}

uint64_t Checksum(const uint8_t* data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h ^ n;
}

}  // namespace ferry::testing
