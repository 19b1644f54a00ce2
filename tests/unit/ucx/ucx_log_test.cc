// UCX log lines that only say a peer is gone are routed to spdlog debug instead of UCX's
// ERROR lines on stdout/stderr (dataplane/ucx/ucx_log.h); a lost peer reads as such.
#include "dataplane/ucx/ucx_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "dataplane/ucx/ucx_transport.h"
#include "gtest/gtest.h"
#include "tests/unit/transport/transport_test_util.h"

namespace ferry::dataplane {
namespace {

using namespace std::chrono_literals;
using testing::Completion;
using ucx::IsPeerGoneMessage;

const bool kLoopbackOnly = [] {
  setenv("UCX_NET_DEVICES", "lo", 1);
  setenv("UCX_TLS", "tcp,self", 0);
  unsetenv("UCX_LOG_LEVEL");  // the filter steps aside when the user sets it
  return true;
}();

TEST(UcxLogFilter, ClassifiesPeerGoneMessages) {
  EXPECT_TRUE(IsPeerGoneMessage(
      "sock.c", "connect(fd=160, dest_addr=127.0.0.1:36439) failed: Connection refused"));
  EXPECT_TRUE(IsPeerGoneMessage("/build/ucx/src/uct/tcp/tcp_ep.c",
                                "try to increase \"net.core.somaxconn\", ..."));
  EXPECT_TRUE(IsPeerGoneMessage("tcp_ep.c", "tcp_ep 0x1 (state=CONNECTED): recv(7) failed: "
                                            "Connection reset by remote peer"));
  EXPECT_TRUE(IsPeerGoneMessage("select.c", "no active messages transport to <no debug data>: "
                                            "tcp/lo - Destination is unreachable"));
  // Real errors stay UCX's.
  EXPECT_FALSE(IsPeerGoneMessage("sock.c", "bind(fd=3) failed: Address already in use"));
  EXPECT_FALSE(IsPeerGoneMessage("select.c", "no active messages transport to <no debug data>: "
                                             "Unsupported operation"));
  EXPECT_FALSE(IsPeerGoneMessage("ucp_mm.c", "failed to register address 0x1 length 4096"));
}

// Captures what this process writes to fds 1 and 2 while alive.
class CaptureOutput {
 public:
  CaptureOutput() {
    std::fflush(stdout);
    std::fflush(stderr);
    char name[] = "/tmp/ferry_ucx_log_XXXXXX";
    fd_ = mkstemp(name);
    unlink(name);
    saved_out_ = dup(1);
    saved_err_ = dup(2);
    dup2(fd_, 1);
    dup2(fd_, 2);
  }
  std::string Stop() {
    std::fflush(stdout);
    std::fflush(stderr);
    dup2(saved_out_, 1);
    dup2(saved_err_, 2);
    close(saved_out_);
    close(saved_err_);
    std::string out;
    char buf[4096];
    ssize_t n;
    lseek(fd_, 0, SEEK_SET);
    while ((n = read(fd_, buf, sizeof(buf))) > 0) out.append(buf, n);
    close(fd_);
    return out;
  }

 private:
  int fd_, saved_out_, saved_err_;
};

std::unique_ptr<Transport> MakeUcx(NodeId id) {
  UcxTransportOptions options;
  options.self = id;
  auto t = CreateUcxTransport(options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// A node that has gone away: connecting to its stale address makes UCX log ERROR lines
// (connect refused, unreachable), which now go to debug; the Status names the node.
TEST(UcxLogFilter, GonePeerLogsNoUcxErrors) {
  auto a = MakeUcx(1);
  auto b = MakeUcx(2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::string b_address = b->LocalAddress();
  b.reset();  // its listening port closes
  ASSERT_TRUE(a->AddPeer(2, b_address).ok());
  CaptureOutput capture;
  Completion c;
  a->SendControl(2, "hello", c.done());
  auto st = c.Wait(30s);
  const std::string out = capture.Stop();
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(st->ok());
  EXPECT_NE(st->message().find("node 2"), std::string::npos) << *st;
  EXPECT_EQ(out.find("UCX  ERROR"), std::string::npos) << out;
  std::printf("status: %s\ncaptured: %s\n", st->ToString().c_str(), out.c_str());
}

}  // namespace
}  // namespace ferry::dataplane
