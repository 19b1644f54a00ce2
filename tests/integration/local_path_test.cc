// The local fast path (shm/local_channel.h) against real ferryd processes: a Get of an
// object sealed on the client's own node, with the path on and off, returns the same bytes
// and metadata, pins it (the pin is dropped by Release, so Delete then goes through), and
// every case the path cannot answer still behaves as the RPC does. Raw frames on the arena
// socket check the server side: answers for a sealed object, fallbacks for what it cannot
// answer, and a malformed frame closing only that client's session.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/sidecar.pb.h"
#include "shm/arena_channel.h"
#include "shm/local_channel.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

class LocalPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = 2;
    o.arena = "64MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static std::unique_ptr<Client> ConnectWith(int node, bool fast) {
    ConnectOptions o;
    o.local_fast_path = fast;
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(cluster_->socket(node), o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  static LocalCluster* cluster_;
};
LocalCluster* LocalPathTest::cluster_ = nullptr;

TEST_F(LocalPathTest, LocalGetMatchesTheRpcAndPinsUntilReleased) {
  auto writer = ConnectWith(0, true);
  auto fast = ConnectWith(0, true);
  auto slow = ConnectWith(0, false);
  ASSERT_TRUE(writer && fast && slow);
  for (size_t size : {size_t{0}, size_t{1}, size_t{1024}, size_t{3} << 20}) {
    const std::string key = "local/k" + std::to_string(size);
    const std::vector<uint8_t> data = Pattern(size, size + 1);
    ASSERT_TRUE(writer->Put(key, data).ok()) << key;
    absl::StatusOr<ObjectView> a = fast->Get(key, absl::Seconds(5));
    absl::StatusOr<ObjectView> b = slow->Get(key, absl::Seconds(5));
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << " / " << b.status();
    ASSERT_EQ(a->size(), size);
    EXPECT_EQ(Checksum(b->data(), b->size()), Checksum(data.data(), data.size()));
    EXPECT_EQ(Checksum(a->data(), a->size()), Checksum(data.data(), data.size()));
    EXPECT_EQ(a->meta().dtype, b->meta().dtype);
    EXPECT_EQ(a->meta().size, b->meta().size);
  }
  // Many Gets of one object, each view released: the pins balance, so a Delete afterwards
  // frees it cluster-wide and a later Get finds nothing.
  ASSERT_TRUE(writer->Put("local/many", Pattern(4096, 9)).ok());
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<ObjectView> v = fast->Get("local/many", absl::Seconds(5));
    ASSERT_TRUE(v.ok()) << v.status();
  }
  ASSERT_TRUE(writer->Delete("local/many").ok());
  absl::StatusOr<ObjectView> gone = fast->Get("local/many", absl::ZeroDuration());
  EXPECT_FALSE(gone.ok());
}

TEST_F(LocalPathTest, WhatTheFastPathCannotAnswerBehavesAsTheRpc) {
  auto writer0 = ConnectWith(0, true);
  auto writer1 = ConnectWith(1, true);
  auto fast = ConnectWith(0, true);
  auto slow = ConnectWith(0, false);
  ASSERT_TRUE(writer0 && writer1 && fast && slow);
  // Missing: the same error either way.
  absl::StatusOr<ObjectView> a = fast->Get("local/missing", absl::ZeroDuration());
  absl::StatusOr<ObjectView> b = slow->Get("local/missing", absl::ZeroDuration());
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), b.status().code());
  EXPECT_EQ(a.status().message(), b.status().message());
  // Invalid name: the RPC's INVALID_ARGUMENT.
  absl::StatusOr<ObjectView> bad = fast->Get(std::string(5000, 'k'), absl::ZeroDuration());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  // On another node: pulled as usual, then local for the next Get.
  const std::vector<uint8_t> data = Pattern(1 << 20, 77);
  ASSERT_TRUE(writer1->Put("local/remote", data).ok());
  absl::StatusOr<ObjectView> pulled = fast->Get("local/remote", absl::Seconds(10));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(Checksum(pulled->data(), pulled->size()), Checksum(data.data(), data.size()));
  absl::StatusOr<ObjectView> again = fast->Get("local/remote", absl::Seconds(10));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->data(), pulled->data());
  // Not sealed yet: the Get waits (RPC) and returns once it is.
  absl::StatusOr<WritableObject> w = writer0->Create("local/unsealed", 4096);
  ASSERT_TRUE(w.ok()) << w.status();
  absl::StatusOr<ObjectView> waited = absl::UnknownError("not run");
  std::thread getter([&] { waited = fast->Get("local/unsealed", absl::Seconds(10)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::memset(w->data(), 0x5a, 4096);
  ASSERT_TRUE(w->Seal().ok());
  getter.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->data()[4095], 0x5a);
  // An async Get of a local object is finished as soon as it returns.
  GetHandle h = fast->GetAsync("local/remote", absl::Seconds(5));
  EXPECT_TRUE(h.Ready());
  absl::StatusOr<ObjectView> async = h.Wait(absl::Seconds(5));
  ASSERT_TRUE(async.ok()) << async.status();
  EXPECT_EQ(async->data(), pulled->data());
}

// A raw client on the arena socket: the hello, then frames of its own.
class RawArenaClient {
 public:
  explicit RawArenaClient(const std::string& socket) {
    absl::StatusOr<shm::ReceivedArena> r = shm::ReceiveArena(socket, 5000);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return;
    sock_ = r->conn;
    session_ = r->hello.session;
    close(r->fd);
  }
  ~RawArenaClient() {
    if (sock_ >= 0) close(sock_);
  }
  int sock() const { return sock_; }
  uint64_t session() const { return session_; }
  absl::Status Call(shm::LocalOp op, const google::protobuf::Message& body, shm::LocalReply* out) {
    return shm::LocalCall(sock_, op, ++id_, body.SerializeAsString(), 5000, out);
  }
  // True if ferryd closed the connection within `ms`.
  bool ClosedWithin(int ms) {
    pollfd p = {sock_, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, ms) <= 0) return false;
    char c;
    return recv(sock_, &c, 1, MSG_DONTWAIT) == 0;
  }

 private:
  int sock_ = -1;
  uint64_t session_ = 0;
  uint32_t id_ = 0;
};

proto::GetRequest GetOf(uint64_t session, const std::string& key) {
  proto::GetRequest req;
  req.set_session(session);
  req.mutable_ref()->set_ns("default");
  req.mutable_ref()->set_key(key);
  return req;
}

TEST_F(LocalPathTest, ServerAnswersSealedObjectsAndFallsBackForTheRest) {
  auto writer = ConnectWith(0, true);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->Put("raw/sealed", Pattern(2048, 3)).ok());
  RawArenaClient raw(cluster_->socket(0));
  ASSERT_GE(raw.sock(), 0);
  shm::LocalReply reply;
  ASSERT_TRUE(raw.Call(shm::LocalOp::kGet, GetOf(raw.session(), "raw/sealed"), &reply).ok());
  ASSERT_EQ(reply.kind, shm::LocalReplyKind::kOk) << reply.body;
  proto::GetReply got;
  ASSERT_TRUE(got.ParseFromString(reply.body));
  EXPECT_EQ(got.meta().size(), 2048u);
  // Its pin is this session's: released here once, the second Release has nothing to drop.
  proto::ReleaseRequest rel;
  rel.set_session(raw.session());
  *rel.mutable_ref() = GetOf(raw.session(), "raw/sealed").ref();
  ASSERT_TRUE(raw.Call(shm::LocalOp::kRelease, rel, &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kOk) << reply.body;
  ASSERT_TRUE(raw.Call(shm::LocalOp::kRelease, rel, &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kFallback);
  // Missing, another session's id, an invalid name, a body that does not parse: fallbacks,
  // and the connection stays usable.
  ASSERT_TRUE(raw.Call(shm::LocalOp::kGet, GetOf(raw.session(), "raw/missing"), &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kFallback);
  EXPECT_THAT(reply.body, HasSubstr("not found"));
  ASSERT_TRUE(raw.Call(shm::LocalOp::kGet, GetOf(raw.session() + 1000, "raw/sealed"), &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kFallback);
  EXPECT_THAT(reply.body, HasSubstr("another session"));
  ASSERT_TRUE(raw.Call(shm::LocalOp::kGet, GetOf(raw.session(), ""), &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kFallback);
  ASSERT_TRUE(shm::LocalCall(raw.sock(), shm::LocalOp::kGet, 99, "\xff\xff\xff", 5000, &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kFallback);
  ASSERT_TRUE(raw.Call(shm::LocalOp::kGet, GetOf(raw.session(), "raw/sealed"), &reply).ok());
  EXPECT_EQ(reply.kind, shm::LocalReplyKind::kOk);
}

TEST_F(LocalPathTest, AMalformedFrameEndsOnlyThatSession) {
  auto other = ConnectWith(0, true);
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->Put("raw/survivor", Pattern(1000, 5)).ok());
  for (const std::string& junk : {std::string(16, 'x'), shm::EncodeLocalRequest(shm::LocalOp::kGet, 1, "") + "tail"}) {
    RawArenaClient raw(cluster_->socket(0));
    ASSERT_GE(raw.sock(), 0);
    std::string frame = junk;
    if (junk.size() > 16) {
      // A valid frame, then one whose header claims a body over the limit.
      shm::LocalRequestHeader h;
      h.op = 1;
      h.body_len = shm::kMaxLocalBody + 1;
      frame = junk.substr(0, 16) + std::string(reinterpret_cast<const char*>(&h), sizeof(h));
    }
    ASSERT_EQ(send(raw.sock(), frame.data(), frame.size(), MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()));
    // A valid first frame is answered before the bad one closes the connection.
    if (junk.size() > 16) {
      shm::LocalReplyHeader h;
      ASSERT_EQ(recv(raw.sock(), &h, sizeof(h), MSG_WAITALL), static_cast<ssize_t>(sizeof(h)));
      EXPECT_EQ(h.magic, shm::kLocalReplyMagic);
      EXPECT_EQ(h.id, 1u);
      std::string body(h.body_len, '\0');
      if (h.body_len > 0) {
        ASSERT_EQ(recv(raw.sock(), body.data(), h.body_len, MSG_WAITALL), static_cast<ssize_t>(h.body_len));
      }
    }
    EXPECT_TRUE(raw.ClosedWithin(5000)) << "ferryd kept a connection that broke the frame format";
  }
  // ferryd goes on serving everyone else, both paths.
  absl::StatusOr<ObjectView> v = other->Get("raw/survivor", absl::Seconds(5));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Checksum(v->data(), v->size()), Checksum(Pattern(1000, 5).data(), 1000));
  auto fresh = ConnectWith(0, true);
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->Get("raw/survivor", absl::Seconds(5)).ok());
}

}  // namespace
}  // namespace ferry::testing
