#include "dataplane/sidecar/arena_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ferry::dataplane {

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
  ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
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
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    close(sock);
    return absl::UnavailableError(absl::StrCat("no ferryd at '", socket_path, "' (connect ", path,
                                               ": ", strerror(e), ")"));
  }
  struct pollfd pfd = {sock, POLLIN, 0};
  if (poll(&pfd, 1, timeout_ms) <= 0) {
    close(sock);
    return absl::UnavailableError(absl::StrCat("ferryd at '", socket_path, "' did not send its arena"));
  }
  ReceivedArena out;
  struct iovec iov = {&out.hello, sizeof(out.hello)};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n != static_cast<ssize_t>(sizeof(out.hello)) || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) {
    close(sock);
    return absl::InternalError(absl::StrCat("malformed arena hello from ferryd at '", socket_path, "'"));
  }
  std::memcpy(&out.fd, CMSG_DATA(cmsg), sizeof(int));
  if (out.hello.magic != kArenaMagic || out.hello.version != kArenaProtocolVersion) {
    close(out.fd);
    close(sock);
    return absl::InternalError(absl::StrCat("ferryd at '", socket_path, "' speaks arena protocol ",
                                            out.hello.version, "; this client speaks ", kArenaProtocolVersion));
  }
  out.conn = sock;
  return out;
}

}  // namespace ferry::dataplane
