#include "dataplane/sidecar/arena_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shm/arena_channel.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

absl::StatusOr<int> LockSocketPath(const std::string& socket_path) {
  const std::string lock_path = socket_path + ".lock";
  int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", lock_path, ": ", strerror(errno)));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("another ferryd is already serving socket ", socket_path, " (", lock_path, " is locked)"));
    }
    return absl::InternalError(absl::StrCat("flock ", lock_path, ": ", strerror(e)));
  }
  return fd;
}

absl::StatusOr<std::unique_ptr<ArenaServer>> ArenaServer::Start(const std::string& socket_path, int arena_fd,
                                                                uint64_t arena_size, uint64_t node_id,
                                                                SessionEnded on_end) {
  std::unique_ptr<ArenaServer> server(new ArenaServer());
  server->path_ = shm::ArenaSocketPath(socket_path);
  server->arena_fd_ = arena_fd;
  server->arena_size_ = arena_size;
  server->node_id_ = node_id;
  server->on_end_ = std::move(on_end);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (server->path_.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path '", server->path_, "' is too long"));
  }
  std::memcpy(addr.sun_path, server->path_.c_str(), server->path_.size() + 1);
  unlink(server->path_.c_str());
  server->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->listen_fd_ < 0 || bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      chmod(server->path_.c_str(), 0660) != 0 || listen(server->listen_fd_, 128) != 0) {
    return absl::InternalError(absl::StrCat("cannot listen on ", server->path_, ": ", strerror(errno)));
  }
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

ArenaServer::~ArenaServer() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ArenaServer::Stop() {
  if (stop_.exchange(true)) return;
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  unlink(path_.c_str());
}

bool ArenaServer::IsLive(uint64_t session) const {
  absl::MutexLock lock(&mu_);
  return live_.contains(session);
}

size_t ArenaServer::live_sessions() const {
  absl::MutexLock lock(&mu_);
  return live_.size();
}

void ArenaServer::Loop() {
  std::map<int, uint64_t> conns;   // fd -> session
  while (!stop_.load()) {
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (const auto& [fd, s] : conns) fds.push_back({fd, POLLIN | POLLRDHUP, 0});
    if (poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        uint64_t session;
        {
          absl::MutexLock lock(&mu_);
          session = next_session_++;
          live_.insert(session);
        }
        shm::ArenaHello hello;
        hello.session = session;
        hello.arena_size = arena_size_;
        hello.node_id = node_id_;
        if (absl::Status s = shm::SendArenaHello(c, hello, arena_fd_); s.ok()) {
          conns[c] = session;
        } else {
          close(c);
          absl::MutexLock lock(&mu_);
          live_.erase(session);
        }
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      char buf[64];
      ssize_t n = recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) continue;   // ignore chatter
      const uint64_t session = conns[fds[i].fd];
      close(fds[i].fd);
      conns.erase(fds[i].fd);
      {
        absl::MutexLock lock(&mu_);
        live_.erase(session);
      }
      on_end_(session);
    }
  }
  for (const auto& [fd, session] : conns) {
    close(fd);
    on_end_(session);
  }
}

}  // namespace ferry::dataplane
