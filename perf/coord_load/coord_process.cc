#include "perf/coord_load/coord_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::perf {
namespace {

std::string Errno(int e) { return std::strerror(e); }

// A port the kernel says is free on 127.0.0.1 now. ferry-coord binds it a moment later; on
// a loopback-only test box nothing else races for it.
absl::StatusOr<int> FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(AF_INET): ", Errno(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", Errno(e)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string DescribeWait(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace

absl::StatusOr<ProcSample> SampleProc(pid_t pid) {
  ProcSample s;
  const std::string dir = absl::StrCat("/proc/", pid);
  std::ifstream status(dir + "/status");
  if (!status) return absl::NotFoundError(absl::StrCat("cannot read ", dir, "/status: ", Errno(errno)));
  std::string line;
  while (std::getline(status, line)) {
    std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    std::string v(absl::StripAsciiWhitespace(kv[1]));
    if (kv[0] == "Threads") (void)absl::SimpleAtoi(v, &s.threads);
    if (kv[0] == "VmRSS") {   // "123456 kB"
      uint64_t kb = 0;
      std::vector<std::string> parts = absl::StrSplit(v, ' ', absl::SkipEmpty());
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &kb)) s.rss_bytes = kb * 1024;
    }
  }
  std::ifstream stat(dir + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start at ") ": state is field 3,
  // utime and stime are fields 14 and 15.
  size_t close_paren = text.rfind(')');
  if (close_paren == std::string::npos) return absl::InternalError(absl::StrCat("cannot parse ", dir, "/stat"));
  std::vector<std::string> f = absl::StrSplit(text.substr(close_paren + 2), ' ', absl::SkipEmpty());
  uint64_t utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) || !absl::SimpleAtoi(f[12], &stime)) {
    return absl::InternalError(absl::StrCat("cannot parse utime/stime in ", dir, "/stat"));
  }
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return s;
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

absl::StatusOr<uint64_t> EnsureFdLimit(uint64_t want) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return absl::InternalError(absl::StrCat("getrlimit(NOFILE): ", Errno(errno)));
  if (rl.rlim_cur >= want) return static_cast<uint64_t>(rl.rlim_cur);
  rl.rlim_cur = std::min<rlim_t>(want, rl.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return absl::InternalError(absl::StrCat("setrlimit(NOFILE, ", rl.rlim_cur, "): ", Errno(errno)));
  }
  return static_cast<uint64_t>(rl.rlim_cur);
}

absl::StatusOr<std::unique_ptr<CoordProcess>> CoordProcess::Start(const std::string& binary, const std::string& token,
                                                                  const std::vector<std::string>& extra,
                                                                  const std::string& log_path) {
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("ferry-coord binary ", binary, ": ", Errno(errno)));
  }
  absl::StatusOr<int> port = FreeLoopbackPort();
  if (!port.ok()) return port.status();
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  std::vector<std::string> args = {binary, "--listen", address};
  if (!token.empty()) {
    args.push_back("--token");
    args.push_back(token);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("open coordinator log ", log_path, ": ", Errno(errno)));
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork for ", binary, ": ", Errno(e)));
  }
  if (pid == 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd);
  std::unique_ptr<CoordProcess> proc(new CoordProcess(pid, address));
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(15);
  while (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::milliseconds(200))) {
    if (absl::Status s = proc->CheckAlive(); !s.ok()) return s;
    if (std::chrono::system_clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("ferry-coord (pid ", pid, ") does not accept connections on ",
                                                      address, " after 15 s; see ", log_path));
    }
  }
  return proc;
}

CoordProcess::~CoordProcess() { (void)Stop(); }

absl::Status CoordProcess::CheckAlive() {
  if (!reaped_) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == 0) return absl::OkStatus();
    reaped_ = true;
    exit_status_ = status;
  }
  return absl::UnavailableError(absl::StrCat("ferry-coord (pid ", pid_, ") ", DescribeWait(exit_status_)));
}

absl::Status CoordProcess::Stop() {
  if (!reaped_) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && !reaped_; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        exit_status_ = status;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &exit_status_, 0);
      reaped_ = true;
      return absl::DeadlineExceededError(absl::StrCat("ferry-coord (pid ", pid_, ") ignored SIGTERM for 5 s; killed"));
    }
    if (WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) == 0) return absl::OkStatus();
  }
  if (WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("ferry-coord (pid ", pid_, ") ", DescribeWait(exit_status_)));
}

}  // namespace ferry::perf
