// Helpers of ferry-transport-bench: pre-touched memory, the verification pattern, the pipe
// protocol with the server process, and result rows. Header-only; used by one binary.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace ferry::perf {

[[noreturn]] inline void Die(const std::string& why) {
  std::fprintf(stderr, "ferry-transport-bench: %s\n", why.c_str());
  std::exit(1);
}

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "(unset)" : v;
}

// "64MiB", "1GiB", "4096", "1m": bytes (binary units).
inline uint64_t ParseBytes(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) Die("bad size '" + text + "'");
  uint64_t n = std::strtoull(text.substr(0, i).c_str(), nullptr, 10);
  std::string unit = text.substr(i);
  std::transform(unit.begin(), unit.end(), unit.begin(), ::tolower);
  if (unit.empty() || unit == "b") return n;
  if (unit == "k" || unit == "kib") return n << 10;
  if (unit == "m" || unit == "mib") return n << 20;
  if (unit == "g" || unit == "gib") return n << 30;
  Die("bad size unit in '" + text + "'");
}

// Anonymous memory populated at allocation (first-touch faults are slow on these VMs and
// must not be timed).
class Arena {
 public:
  explicit Arena(uint64_t len) : len_(len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) Die("mmap of " + std::to_string(len) + " bytes failed");
    data_ = static_cast<uint8_t*>(p);
    for (uint64_t off = 0; off < len; off += 4096) data_[off] = 0;  // in case populate was partial
  }
  ~Arena() { munmap(data_, len_); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  uint8_t* data() const { return data_; }

 private:
  uint64_t len_;
  uint8_t* data_;
};

// The source pattern: 64-bit word w of the server's buffer.
inline uint64_t PatternWord(uint64_t w) { return (w + 1) * 0x9E3779B97F4A7C15ull ^ (w >> 7); }

inline void FillWords(uint8_t* p, uint64_t len) {
  auto* w = reinterpret_cast<uint64_t*>(p);
  for (uint64_t i = 0; i < len / 8; ++i) w[i] = PatternWord(i);
}

// Words of dst[0, len) that differ from the source (dst mirrors the server's offsets).
inline uint64_t CountBadWords(const uint8_t* p, uint64_t len) {
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t bad = 0;
  for (uint64_t i = 0; i < len / 8; ++i) bad += w[i] != PatternWord(i);
  return bad;
}

struct RangeRequest {
  uint64_t offset;
  uint64_t length;
};

inline void WriteBlob(int fd, const std::string& s) {
  uint32_t n = s.size();
  if (write(fd, &n, 4) != 4 || write(fd, s.data(), n) != static_cast<ssize_t>(n)) {
    Die("pipe write failed");
  }
}

inline bool ReadFull(int fd, void* dst, size_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= r;
  }
  return true;
}

inline std::string ReadBlob(int fd, bool allow_eof = false) {
  uint32_t n = 0;
  if (!ReadFull(fd, &n, 4)) {
    if (allow_eof) return {};
    Die("peer process closed the pipe");
  }
  std::string s(n, '\0');
  if (!ReadFull(fd, s.data(), n)) Die("peer process closed the pipe");
  return s;
}

struct ServerProcess {
  pid_t pid = -1;
  int rd = -1, wr = -1;
  void Stop() {
    close(wr);  // the server exits when the pipe closes
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) return;
      usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

// fork + exec of this binary as the server, so the two processes share no UCX state.
template <typename Options>
ServerProcess SpawnServer(const Options& o) {
  int p2c[2], c2p[2];
  if (pipe(p2c) != 0 || pipe(c2p) != 0) Die("pipe failed");
  pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    std::string fds = std::to_string(p2c[0]) + "," + std::to_string(c2p[1]);
    std::string sizes;
    for (const auto& s : o.sizes) sizes += (sizes.empty() ? "" : ",") + s;
    std::vector<const char*> args = {"ferry-transport-bench", "--role", "server", "--fds",
                                     fds.c_str(), "--sizes", sizes.c_str()};
    if (o.busy_poll) args.push_back("--busy-poll");
    args.push_back(nullptr);
    execv("/proc/self/exe", const_cast<char* const*>(args.data()));
    _exit(127);
  }
  close(p2c[0]);
  close(c2p[1]);
  return ServerProcess{pid, c2p[0], p2c[1]};
}

struct Row {
  uint64_t size;
  std::string method;
  int iters;
  double median_s, min_s;
  uint64_t errors;
};

inline Row Summarise(uint64_t size, const std::string& method, std::vector<double> times,
                     uint64_t errors) {
  std::sort(times.begin(), times.end());
  return Row{size, method, static_cast<int>(times.size()), times[times.size() / 2], times.front(),
             errors};
}

inline void PrintRow(const Row& r) {
  double mbps = r.size / r.median_s / 1e6;
  std::printf("%12llu %8s %6d %10.0f %10.0f %10.1f %10.1f %7llu\n",
              static_cast<unsigned long long>(r.size), r.method.c_str(), r.iters,
              r.median_s * 1e6, r.min_s * 1e6, mbps, mbps,
              static_cast<unsigned long long>(r.errors));
  std::fflush(stdout);
}

inline nlohmann::json ToJson(const Row& r, uint64_t chunk, int window) {
  return {{"size", r.size},          {"method", r.method},
          {"chunk", chunk},          {"window", window},
          {"iters", r.iters},        {"median_us", r.median_s * 1e6},
          {"min_us", r.min_s * 1e6}, {"algbw_MBps", r.size / r.median_s / 1e6},
          {"busbw_MBps", r.size / r.median_s / 1e6}, {"errors", r.errors},
          {"ucx_tls", Env("UCX_TLS")}, {"ucx_net_devices", Env("UCX_NET_DEVICES")}};
}

}  // namespace ferry::perf
