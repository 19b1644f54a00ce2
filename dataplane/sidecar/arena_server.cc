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
                                                                SessionEnded on_end, LocalHandler local) {
  std::unique_ptr<ArenaServer> server(new ArenaServer());
  server->path_ = shm::ArenaSocketPath(socket_path);
  server->arena_fd_ = arena_fd;
  server->arena_size_ = arena_size;
  server->node_id_ = node_id;
  server->on_end_ = std::move(on_end);
  server->local_ = std::move(local);
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

bool ArenaServer::Serve(int fd, Conn& conn) {
  char buf[16 * 1024];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return false;   // the client closed its end
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return false;
    }
    conn.in.append(buf, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < sizeof(buf)) break;
  }
  while (true) {
    shm::ParsedRequest parsed = shm::TakeLocalRequest(&conn.in);
    if (!parsed.error.ok()) {
      spdlog::warn("arena session {}: {}; closing its connection (the session ends)", conn.session,
                   std::string(parsed.error.message()));
      return false;
    }
    if (!parsed.request.has_value()) return true;
    shm::LocalReply reply;
    if (local_) {
      reply = local_(conn.session, *parsed.request);
    } else {
      reply.body = "this ferryd serves no local requests";
    }
    const std::string frame = shm::EncodeLocalReply(reply.kind, parsed.request->id, reply.body);
    // The client waits for each reply before it sends the next request, so a reply that does
    // not fit in the socket at once means a client that does not read: it is cut off rather
    // than allowed to stall this thread, which serves every client.
    ssize_t sent;
    do {
      sent = send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent != static_cast<ssize_t>(frame.size())) {
      spdlog::warn("arena session {}: its local reply could not be written ({}); closing its connection",
                   conn.session, sent < 0 ? strerror(errno) : "partial write");
      return false;
    }
  }
}

void ArenaServer::Loop() {
  std::map<int, Conn> conns;   // fd -> its session and unparsed bytes
  while (!stop_.load()) {
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (const auto& [fd, c] : conns) fds.push_back({fd, POLLIN | POLLRDHUP, 0});
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
          conns[c].session = session;
        } else {
          close(c);
          absl::MutexLock lock(&mu_);
          live_.erase(session);
        }
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto it = conns.find(fds[i].fd);
      if (Serve(fds[i].fd, it->second)) continue;
      const uint64_t session = it->second.session;
      close(fds[i].fd);
      conns.erase(it);
      {
        absl::MutexLock lock(&mu_);
        live_.erase(session);
      }
      on_end_(session);
    }
  }
  for (const auto& [fd, c] : conns) {
    close(fd);
    on_end_(c.session);
  }
}

}  // namespace ferry::dataplane
