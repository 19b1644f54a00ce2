// The local-request frames (shm/local_channel.h): parsing requests as they arrive (whole,
// split, several at once), refusing malformed ones, and the client's LocalCall against a
// server thread on a socketpair (answers, a closed peer, a reply for another id, no answer).
#include "shm/local_channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <thread>

namespace ferry::shm {
namespace {

TEST(LocalChannelTest, TakesWholeFramesOnlyAndInOrder) {
  std::string buf = EncodeLocalRequest(LocalOp::kGet, 7, "abc") + EncodeLocalRequest(LocalOp::kRelease, 8, "");
  const std::string all = buf;
  // Byte by byte: nothing until the first frame is complete.
  std::string part;
  size_t taken = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    part.push_back(all[i]);
    ParsedRequest p = TakeLocalRequest(&part);
    ASSERT_TRUE(p.error.ok()) << p.error;
    if (p.request.has_value()) {
      ++taken;
      if (taken == 1) {
        EXPECT_EQ(i + 1, sizeof(LocalRequestHeader) + 3);
        EXPECT_EQ(p.request->op, LocalOp::kGet);
        EXPECT_EQ(p.request->id, 7u);
        EXPECT_EQ(p.request->body, "abc");
      } else {
        EXPECT_EQ(p.request->op, LocalOp::kRelease);
        EXPECT_EQ(p.request->id, 8u);
        EXPECT_TRUE(p.request->body.empty());
      }
      EXPECT_TRUE(part.empty());
    }
  }
  EXPECT_EQ(taken, 2u);
  // Both at once.
  ParsedRequest a = TakeLocalRequest(&buf);
  ParsedRequest b = TakeLocalRequest(&buf);
  ParsedRequest c = TakeLocalRequest(&buf);
  ASSERT_TRUE(a.request.has_value() && b.request.has_value());
  EXPECT_EQ(a.request->id, 7u);
  EXPECT_EQ(b.request->id, 8u);
  EXPECT_FALSE(c.request.has_value());
  EXPECT_TRUE(c.error.ok());
}

TEST(LocalChannelTest, MalformedFramesAreNamedAndLeaveTheBufferAlone) {
  auto expect_error = [](std::string buf, const std::string& needle) {
    const std::string before = buf;
    ParsedRequest p = TakeLocalRequest(&buf);
    EXPECT_EQ(p.error.code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(p.error.message().find(needle), std::string::npos) << p.error;
    EXPECT_FALSE(p.request.has_value());
    EXPECT_EQ(buf, before);
  };
  LocalRequestHeader h;
  h.op = 1;
  auto bytes = [](const LocalRequestHeader& hh) {
    return std::string(reinterpret_cast<const char*>(&hh), sizeof(hh));
  };
  LocalRequestHeader bad = h;
  bad.magic = 0x12345678;
  expect_error(bytes(bad), "bad magic");
  bad = h;
  bad.op = 99;
  expect_error(bytes(bad), "unknown op 99");
  bad = h;
  bad.op = 0;
  expect_error(bytes(bad), "unknown op 0");
  bad = h;
  bad.reserved = 1;
  expect_error(bytes(bad), "reserved");
  bad = h;
  bad.body_len = kMaxLocalBody + 1;
  expect_error(bytes(bad), "at most");
  // The limit itself is fine (and waits for the body).
  LocalRequestHeader max = h;
  max.body_len = kMaxLocalBody;
  std::string buf = bytes(max);
  ParsedRequest p = TakeLocalRequest(&buf);
  EXPECT_TRUE(p.error.ok());
  EXPECT_FALSE(p.request.has_value());
}

class LocalCallTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  void TearDown() override {
    if (server_.joinable()) server_.join();
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  // Reads one request on the server end and answers it with `reply` bytes (or closes).
  void Serve(std::function<std::string(const LocalRequest&)> answer) {
    server_ = std::thread([this, answer] {
      std::string buf;
      char tmp[256];
      while (true) {
        ssize_t n = recv(fds_[1], tmp, sizeof(tmp), 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
        ParsedRequest p = TakeLocalRequest(&buf);
        if (!p.request.has_value()) continue;
        const std::string out = answer(*p.request);
        if (out.empty()) {
          shutdown(fds_[1], SHUT_RDWR);
        } else {
          (void)!send(fds_[1], out.data(), out.size(), MSG_NOSIGNAL);
        }
        return;
      }
    });
  }
  int fds_[2] = {-1, -1};
  std::thread server_;
};

TEST_F(LocalCallTest, ReturnsTheAnswerOfItsRequest) {
  Serve([](const LocalRequest& r) { return EncodeLocalReply(LocalReplyKind::kOk, r.id, "got " + r.body); });
  LocalReply reply;
  ASSERT_TRUE(LocalCall(fds_[0], LocalOp::kGet, 42, "x", 5000, &reply).ok());
  EXPECT_EQ(reply.kind, LocalReplyKind::kOk);
  EXPECT_EQ(reply.body, "got x");
}

TEST_F(LocalCallTest, AFallbackIsAnAnswerToo) {
  Serve([](const LocalRequest& r) { return EncodeLocalReply(LocalReplyKind::kFallback, r.id, "not sealed"); });
  LocalReply reply;
  ASSERT_TRUE(LocalCall(fds_[0], LocalOp::kRelease, 1, "", 5000, &reply).ok());
  EXPECT_EQ(reply.kind, LocalReplyKind::kFallback);
  EXPECT_EQ(reply.body, "not sealed");
}

TEST_F(LocalCallTest, AClosedPeerIsUnavailable) {
  Serve([](const LocalRequest&) { return std::string(); });
  LocalReply reply;
  absl::Status s = LocalCall(fds_[0], LocalOp::kGet, 1, "", 5000, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(LocalCallTest, AReplyToAnotherRequestIsInternal) {
  Serve([](const LocalRequest& r) { return EncodeLocalReply(LocalReplyKind::kOk, r.id + 1, ""); });
  LocalReply reply;
  absl::Status s = LocalCall(fds_[0], LocalOp::kGet, 5, "", 5000, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("answers request 6, not 5"), std::string::npos) << s;
}

TEST_F(LocalCallTest, AMalformedReplyIsInternal) {
  Serve([](const LocalRequest& r) {
    std::string out = EncodeLocalReply(LocalReplyKind::kOk, r.id, "");
    out[0] = 'X';
    return out;
  });
  LocalReply reply;
  absl::Status s = LocalCall(fds_[0], LocalOp::kGet, 5, "", 5000, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
}

TEST_F(LocalCallTest, NoAnswerInTimeIsUnavailable) {
  LocalReply reply;
  absl::Status s = LocalCall(fds_[0], LocalOp::kGet, 5, "", 50, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("in time"), std::string::npos) << s;
}

TEST_F(LocalCallTest, AnOversizedBodyIsRefusedBeforeSending) {
  LocalReply reply;
  absl::Status s = LocalCall(fds_[0], LocalOp::kGet, 5, std::string(kMaxLocalBody + 1, 'a'), 50, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace ferry::shm
