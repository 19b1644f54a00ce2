#include "shm/arena_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ferry::shm {

absl::Status SendArenaHello(int sock, const ArenaHello& hello, int fd) {
  struct iovec iov = {const_cast<ArenaHello*>(&hello), sizeof(hello)};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(hello))) {
    return absl::UnavailableError(absl::StrCat("sending the arena fd to a client: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReceivedArena> ReceiveArena(const std::string& socket_path, int timeout_ms) {
  const std::string path = ArenaSocketPath(socket_path);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path '", path, "' is longer than ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return absl::InternalError(absl::StrCat("socket(): ", strerror(errno)));
  int rc;
  do {
    rc = connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    close(sock);
    return absl::UnavailableError(absl::StrCat("no ferryd at '", socket_path, "' (connect ", path,
                                               ": ", strerror(e), ")"));
  }
  absl::StatusOr<ReceivedArena> out = ReceiveArenaHello(sock, socket_path, timeout_ms);
  if (!out.ok()) close(sock);
  return out;
}

absl::StatusOr<ReceivedArena> ReceiveArenaHello(int sock, const std::string& peer, int timeout_ms) {
  // A signal (a profiler's timer, Python's handlers) interrupts poll and recvmsg: both are
  // retried, poll for what is left of the timeout.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    struct pollfd pfd = {sock, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int r = poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (r > 0) break;
    if (r < 0 && errno == EINTR && left.count() > 0) continue;
    return absl::UnavailableError(absl::StrCat("ferryd at '", peer, "' did not send its arena",
                                               r < 0 ? absl::StrCat(" (poll: ", strerror(errno), ")")
                                                     : absl::StrCat(" within ", timeout_ms, " ms")));
  }
  ReceivedArena out;
  struct iovec iov = {&out.hello, sizeof(out.hello)};
  // Room for a few fds, so that a hello carrying more than one is seen (and all of them
  // closed) rather than truncated by the kernel.
  constexpr size_t kMaxFds = 4;
  alignas(struct cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  const int recv_errno = errno;
  std::vector<int> fds;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); n >= 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  auto fail = [&](std::string why) {
    for (int fd : fds) close(fd);
    return absl::InternalError(absl::StrCat("malformed arena hello from ferryd at '", peer, "': ", why));
  };
  if (n < 0) return fail(absl::StrCat("recvmsg: ", strerror(recv_errno)));
  if (n != static_cast<ssize_t>(sizeof(out.hello))) {
    return fail(absl::StrCat(n, " bytes instead of ", sizeof(out.hello)));
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || fds.size() != 1) {
    return fail(absl::StrCat(fds.size(), (msg.msg_flags & MSG_CTRUNC) != 0 ? "+" : "",
                             " file descriptors instead of 1"));
  }
  if (out.hello.magic != kArenaMagic || out.hello.version != kArenaProtocolVersion) {
    for (int fd : fds) close(fd);
    return absl::InternalError(absl::StrCat("ferryd at '", peer, "' speaks arena protocol ",
                                            out.hello.version, "; this client speaks ", kArenaProtocolVersion));
  }
  struct stat st = {};
  if (fstat(fds[0], &st) != 0) return fail(absl::StrCat("fstat of the arena fd: ", strerror(errno)));
  if (!S_ISREG(st.st_mode)) return fail("the arena fd is not a memfd or regular file");
  if (out.hello.arena_size == 0 || static_cast<uint64_t>(st.st_size) < out.hello.arena_size) {
    return fail(absl::StrCat("arena of ", out.hello.arena_size, " bytes announced, but its fd holds ",
                             st.st_size, " bytes"));
  }
  out.fd = fds[0];
  out.conn = sock;
  return out;
}

}  // namespace ferry::shm
