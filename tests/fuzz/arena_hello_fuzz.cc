// Fuzzes the arena channel between libferry and ferryd (dataplane/sidecar/arena_channel.*,
// arena_server.*), both directions, over real unix sockets. Input: byte 0 picks the
// direction (1 in 8 values the client's: that direction costs a round trip through the
// server's thread and has less to parse), byte 1 % 3 how many memfds travel with the message, bytes 2-3 their size (in
// 4 KiB units); the rest is the message.
// - byte 0 % 8 != 1, what ferryd sends: the message goes as one sendmsg on a socketpair and
//   the client's ReceiveArenaHello parses it. It accepts only a hello it can map (one fd
//   holding at least arena_size bytes), and no fd leaks either way.
// - byte 0 % 8 == 1, what a client sends: a client connects to a real ArenaServer, receives its
//   hello, sends the message (as local requests: answered, or the connection closed on a
//   malformed frame; this server has no handler, so each answer is a fallback) and closes;
//   the server ends exactly that
//   session, and no fd leaks.
#include <dirent.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "shm/arena_channel.h"
#include "dataplane/sidecar/arena_server.h"
#include "tests/fuzz/fuzz_util.h"

namespace dp = ferry::dataplane;

namespace {

int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  FUZZ_CHECK(d != nullptr);
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

// Sends `bytes` with `nfds` fresh memfds of `fd_size` bytes attached (closed here after).
void SendWithFds(int sock, std::string_view bytes, int nfds, off_t fd_size) {
  int fds[2] = {-1, -1};
  for (int i = 0; i < nfds; ++i) {
    fds[i] = memfd_create("ferry-fuzz-arena", MFD_CLOEXEC);
    FUZZ_CHECK(fds[i] >= 0 && ftruncate(fds[i], fd_size) == 0);
  }
  char dummy = 0;
  struct iovec iov = {bytes.empty() ? &dummy : const_cast<char*>(bytes.data()), bytes.size()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  if (!bytes.empty() || nfds > 0) {
    const ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    FUZZ_CHECK(n >= 0 || errno == EPIPE || errno == ECONNRESET);
  }
  for (int i = 0; i < nfds; ++i) close(fds[i]);
}

void FerrydSends(std::string_view message, int nfds, off_t fd_size) {
  const int before = OpenFds();
  int sv[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  SendWithFds(sv[1], message, nfds, fd_size);
  close(sv[1]);   // EOF after the message: the client never waits for more
  absl::StatusOr<ferry::shm::ReceivedArena> got = ferry::shm::ReceiveArenaHello(sv[0], "fuzz", 1000);
  if (got.ok()) {
    FUZZ_CHECK(got->conn == sv[0] && got->fd >= 0);
    FUZZ_CHECK(message.size() >= sizeof(ferry::shm::ArenaHello) && nfds == 1);
    FUZZ_CHECK(got->hello.magic == ferry::shm::kArenaMagic && got->hello.version == ferry::shm::kArenaProtocolVersion);
    struct stat st = {};
    FUZZ_CHECK(fstat(got->fd, &st) == 0 && got->hello.arena_size > 0 &&
               static_cast<uint64_t>(st.st_size) >= got->hello.arena_size);
    close(got->fd);
  } else {
    FUZZ_CHECK(got.status().code() == absl::StatusCode::kInternal ||
               got.status().code() == absl::StatusCode::kUnavailable);
  }
  close(sv[0]);
  FUZZ_CHECK(OpenFds() == before);
}

// One ArenaServer for the process, on a socket in a fresh temporary directory.
struct Server {
  std::string dir, socket;
  int arena_fd = -1;
  std::unique_ptr<dp::ArenaServer> server;
  std::mutex mu;
  std::condition_variable cv;
  std::multiset<uint64_t> ended;

  Server() {
    char tmpl[] = "/tmp/ferry-fuzz-arena-XXXXXX";
    FUZZ_CHECK(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    socket = dir + "/ferryd.sock";
    arena_fd = memfd_create("ferry-fuzz-server-arena", MFD_CLOEXEC);
    FUZZ_CHECK(arena_fd >= 0 && ftruncate(arena_fd, 1 << 20) == 0);
    auto s = dp::ArenaServer::Start(socket, arena_fd, 1 << 20, 7, [this](uint64_t session) {
      std::lock_guard<std::mutex> lock(mu);
      ended.insert(session);
      cv.notify_all();
    });
    FUZZ_CHECK(s.ok());
    server = *std::move(s);
  }
};

void ClientSends(std::string_view message, int nfds, off_t fd_size) {
  static Server* s = [] {
    auto* server = new Server();
    // Remove the socket directory at exit (the ArenaServer unlinks its socket in Stop).
    static std::string dir = server->dir;
    static dp::ArenaServer* srv = server->server.get();
    std::atexit([] {
      srv->Stop();
      rmdir(dir.c_str());
    });
    return server;
  }();
  const int before = OpenFds();
  absl::StatusOr<ferry::shm::ReceivedArena> got = ferry::shm::ReceiveArena(s->socket, 5000);
  FUZZ_CHECK_OK(got);
  const uint64_t session = got->hello.session;
  FUZZ_CHECK(session > 0 && s->server->IsLive(session));
  SendWithFds(got->conn, message, nfds, fd_size);
  close(got->fd);
  close(got->conn);
  std::unique_lock<std::mutex> lock(s->mu);
  FUZZ_CHECK(s->cv.wait_for(lock, std::chrono::seconds(5), [&] { return s->ended.count(session) == 1; }));
  lock.unlock();
  FUZZ_CHECK(!s->server->IsLive(session));
  FUZZ_CHECK(s->server->live_sessions() == 0);
  FUZZ_CHECK(OpenFds() == before);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::fuzz::Reader in(data, size);
  const uint8_t mode = in.Byte();
  const int nfds = in.Byte() % 3;
  const off_t fd_size = static_cast<off_t>(in.Byte() | (in.Byte() << 8)) * 4096;
  const std::string_view message = in.Rest();
  if (mode % 8 != 1) {
    FerrydSends(message, nfds, fd_size);
  } else {
    ClientSends(message, nfds, fd_size);
  }
  return 0;
}
