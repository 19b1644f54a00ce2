// The coordinator under test as a process: start a ferry-coord child on a loopback port, read
// its threads, RSS and CPU time from /proc, stop it. Also the file-descriptor limit check.
//
// Not thread-safe: one harness thread owns a CoordProcess.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::perf {

// What /proc says about a process.
struct ProcSample {
  uint64_t threads = 0;
  uint64_t rss_bytes = 0;
  double cpu_s = 0;   // utime + stime
};
[[nodiscard]] absl::StatusOr<ProcSample> SampleProc(pid_t pid);
// This process's own CPU time (utime + stime), seconds.
double SelfCpuSeconds();

// Raises the soft RLIMIT_NOFILE to at least `want` (bounded by the hard limit). Returns the
// soft limit now in force; an error only if getrlimit/setrlimit fail.
[[nodiscard]] absl::StatusOr<uint64_t> EnsureFdLimit(uint64_t want);

class CoordProcess {
 public:
  // Starts `binary --listen 127.0.0.1:<free port> [--token t] extra...`, output to `log_path`,
  // and waits (up to 15 s) until it accepts a gRPC connection.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CoordProcess>> Start(const std::string& binary,
                                                                           const std::string& token,
                                                                           const std::vector<std::string>& extra,
                                                                           const std::string& log_path);
  ~CoordProcess();   // Stop()

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // OK while the child runs; an error naming how it ended otherwise.
  [[nodiscard]] absl::Status CheckAlive();
  // SIGTERM, up to 5 s for it to exit, then SIGKILL. Idempotent. Error if it exited non-zero.
  absl::Status Stop();

 private:
  CoordProcess(pid_t pid, std::string address) : pid_(pid), address_(std::move(address)) {}
  pid_t pid_;
  std::string address_;
  bool reaped_ = false;
  int exit_status_ = 0;
};

}  // namespace ferry::perf
