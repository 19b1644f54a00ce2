// ReceiveArenaHello (shm/arena_channel.h) on a socketpair: what the client
// accepts from whatever serves the arena socket, and that it never leaks a received fd.
#include "shm/arena_channel.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

namespace ferry::shm {
namespace {

int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

int Memfd(off_t size) {
  int fd = memfd_create("arena-channel-test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, size), 0);
  return fd;
}

// Sends `bytes` with `fds` attached on `sock`.
void Send(int sock, const std::string& bytes, const std::vector<int>& fds) {
  struct iovec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ASSERT_EQ(sendmsg(sock, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

std::string HelloBytes(uint64_t arena_size) {
  ArenaHello h;
  h.session = 3;
  h.arena_size = arena_size;
  h.node_id = 9;
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

// Sends `bytes` with `nfds` memfds of `fd_size` bytes and returns what the client made of it;
// checks that no fd is left open afterwards (the accepted arena fd is closed here).
absl::StatusOr<ReceivedArena> Exchange(const std::string& bytes, int nfds, off_t fd_size) {
  const int before = OpenFds();
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::vector<int> fds;
  for (int i = 0; i < nfds; ++i) fds.push_back(Memfd(fd_size));
  Send(sv[1], bytes, fds);
  for (int fd : fds) close(fd);
  close(sv[1]);
  absl::StatusOr<ReceivedArena> got = ReceiveArenaHello(sv[0], "test", 1000);
  if (got.ok()) close(got->fd);
  close(sv[0]);
  EXPECT_EQ(OpenFds(), before) << "a received fd was leaked";
  return got;
}

TEST(ArenaChannel, AcceptsAHelloWithOneLargeEnoughMemfd) {
  absl::StatusOr<ReceivedArena> got = Exchange(HelloBytes(1 << 20), 1, 1 << 20);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->hello.session, 3u);
  EXPECT_EQ(got->hello.node_id, 9u);
}

TEST(ArenaChannel, ShortHelloWithAnFdFailsAndClosesTheFd) {
  absl::StatusOr<ReceivedArena> got = Exchange(HelloBytes(1 << 20).substr(0, 10), 1, 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(got.status().message().find("10 bytes"), std::string::npos) << got.status();
}

TEST(ArenaChannel, HelloWithTwoFdsFailsAndClosesBoth) {
  absl::StatusOr<ReceivedArena> got = Exchange(HelloBytes(1 << 20), 2, 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("2 file descriptors"), std::string::npos) << got.status();
}

TEST(ArenaChannel, WrongVersionFailsAndClosesTheFd) {
  std::string bytes = HelloBytes(1 << 20);
  bytes[4] = 2;
  absl::StatusOr<ReceivedArena> got = Exchange(bytes, 1, 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("speaks arena protocol 2"), std::string::npos) << got.status();
}

// Mapping 1 MiB of a 4 KiB memfd would succeed and then SIGBUS on the first access.
TEST(ArenaChannel, ArenaLargerThanItsFdIsRefused) {
  absl::StatusOr<ReceivedArena> got = Exchange(HelloBytes(1 << 20), 1, 4096);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("holds 4096 bytes"), std::string::npos) << got.status();
}

TEST(ArenaChannel, ZeroSizedArenaIsRefused) {
  absl::StatusOr<ReceivedArena> got = Exchange(HelloBytes(0), 1, 4096);
  ASSERT_FALSE(got.ok());
}

TEST(ArenaChannel, NothingSentIsUnavailableAfterTheTimeout) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<ReceivedArena> got = ReceiveArenaHello(sv[0], "test", 10);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  close(sv[0]);
  close(sv[1]);
}

// A signal handler installed without SA_RESTART (libFuzzer's, a profiler's, Python's) makes
// poll and recvmsg fail with EINTR: the client retries, for what is left of its timeout.
TEST(ArenaChannel, SignalsWhileWaitingDoNotFailTheHello) {
  struct sigaction sa = {}, old = {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;   // no SA_RESTART
  ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int fd = Memfd(1 << 20);
  // Signals every 5 ms at this thread, the hello after 200 ms.
  const pthread_t waiter = pthread_self();
  std::atomic<bool> done{false};
  std::thread sender([&] {
    const auto start = std::chrono::steady_clock::now();
    bool sent = false;
    while (!done.load() && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
      pthread_kill(waiter, SIGALRM);
      if (!sent && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(200)) {
        Send(sv[1], HelloBytes(1 << 20), {fd});
        sent = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  absl::StatusOr<ReceivedArena> got = ReceiveArenaHello(sv[0], "test", 5000);
  done = true;
  sender.join();
  ASSERT_EQ(sigaction(SIGALRM, &old, nullptr), 0);
  ASSERT_TRUE(got.ok()) << got.status();
  close(got->fd);
  close(fd);
  close(sv[0]);
  close(sv[1]);
}

// Interrupted or not, the timeout still holds.
TEST(ArenaChannel, SignalsDoNotExtendTheTimeout) {
  struct sigaction sa = {}, old = {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const pthread_t waiter = pthread_self();
  std::atomic<bool> done{false};
  std::thread signaller([&] {
    for (int i = 0; i < 2000 && !done.load(); ++i) {
      pthread_kill(waiter, SIGALRM);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ReceivedArena> got = ReceiveArenaHello(sv[0], "test", 100);
  const auto took = std::chrono::steady_clock::now() - start;
  done = true;
  signaller.join();
  ASSERT_EQ(sigaction(SIGALRM, &old, nullptr), 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_LT(took, std::chrono::seconds(3));
  close(sv[0]);
  close(sv[1]);
}

}  // namespace
}  // namespace ferry::shm
