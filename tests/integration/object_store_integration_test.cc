// Real ferry-coord + ferryd processes driven through libferry: puts and gets across nodes,
// and every bad-input path of the foundation issue.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/sidecar.grpc.pb.h"
#include <grpcpp/grpcpp.h>
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = 3;
    o.arena = "160MiB";
    o.coord_flags = {"--fixed-chunk", "1MiB"};   // so chunk-1 / chunk+1 below are exact
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static LocalCluster* cluster_;
};
LocalCluster* ClusterTest::cluster_ = nullptr;

void PutGetAcross(LocalCluster& cluster, const std::string& key, size_t size) {
  auto a = cluster.Connect(0);
  auto b = cluster.Connect(1);
  ASSERT_TRUE(a && b);
  std::vector<uint8_t> data = Pattern(size, size + 7);
  ASSERT_TRUE(a->Put(key, data).ok());
  absl::StatusOr<ObjectView> v = b->Get(key, absl::Seconds(30));
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), size);
  EXPECT_EQ(Checksum(v->data(), v->size()), Checksum(data.data(), data.size())) << key;
  if (size > 0) {
    EXPECT_EQ(0, std::memcmp(v->data(), data.data(), size));
  }
}

TEST_F(ClusterTest, PutGetEdgeSizes) {
  const size_t chunk = 1 << 20;   // the coordinator's --fixed-chunk; sizes also straddle 64 KiB inline
  for (size_t size : {size_t{0}, size_t{1}, size_t{65536}, size_t{65537}, chunk - 1, chunk, chunk + 1,
                      size_t{3 * chunk + 5}, size_t{40 << 20}}) {
    PutGetAcross(*cluster_, "edge/" + std::to_string(size), size);
  }
}

TEST(BigObjectTest, OneGibibyteGetAcrossNodes) {
  ClusterOptions o;
  o.nodes = 2;
  o.arena = "1088MiB";
  LocalCluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.dir();
  auto a = cluster.Connect(0);
  constexpr size_t kSize = size_t{1} << 30;
  uint64_t want = 0;
  {
    auto w = a->Create("big/1g", kSize);
    ASSERT_TRUE(w.ok()) << w.status();
    std::vector<uint8_t> block = Pattern(64 << 20, 1);
    for (size_t off = 0; off < kSize; off += block.size()) std::memcpy(w->data() + off, block.data(), block.size());
    want = Checksum(w->data(), kSize);
    ASSERT_TRUE(w->Seal().ok());
  }
  auto v = cluster.Connect(1)->Get("big/1g", absl::Seconds(120));
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), kSize);
  EXPECT_TRUE(v->info().pulled);
  EXPECT_EQ(Checksum(v->data(), v->size()), want);
}

TEST_F(ClusterTest, LocalGetIsZeroCopyView) {
  auto a = cluster_->Connect(0);
  auto w = a->Create("zc/1", 4096);
  ASSERT_TRUE(w.ok());
  std::memset(w->data(), 0x5a, 4096);
  uint8_t* where = w->data();
  ASSERT_TRUE(w->Seal().ok());
  auto v = a->Get("zc/1", absl::Seconds(1));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->data(), where);   // same arena bytes, no copy
  EXPECT_FALSE(v->info().pulled);
}

TEST_F(ClusterTest, ConcurrentGetsOfManyObjectsByManyClients) {
  auto a = cluster_->Connect(0);
  constexpr int kObjects = 12;
  for (int i = 0; i < kObjects; ++i) {
    ASSERT_TRUE(a->Put("many/" + std::to_string(i), Pattern(2 << 20, i)).ok());
  }
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto c = cluster_->Connect(1 + t % 2);
      for (int i = 0; i < kObjects; ++i) {
        auto v = c->Get("many/" + std::to_string((i + t) % kObjects), absl::Seconds(30));
        if (!v.ok()) continue;
        std::vector<uint8_t> want = Pattern(2 << 20, (i + t) % kObjects);
        if (v->size() == want.size() && std::memcmp(v->data(), want.data(), want.size()) == 0) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 6 * kObjects);
}

TEST_F(ClusterTest, UnknownKeyTimesOutNamingIt) {
  auto c = cluster_->Connect(1);
  absl::Time start = absl::Now();
  auto v = c->Get("no/such/key", absl::Milliseconds(300));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("no/such/key"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(ClusterTest, DuplicateKeyLocallyAndAcrossNodes) {
  auto a = cluster_->Connect(0);
  auto b = cluster_->Connect(2);
  ASSERT_TRUE(a->Put("dup/1", Pattern(100, 1)).ok());
  EXPECT_EQ(a->Put("dup/1", Pattern(100, 2)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(b->Put("dup/1", Pattern(100, 3)).code(), absl::StatusCode::kAlreadyExists);
  auto v = b->Get("dup/1", absl::Seconds(5));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(0, std::memcmp(v->data(), Pattern(100, 1).data(), 100));   // the original is untouched
}

TEST_F(ClusterTest, BadKeysAndSizes) {
  auto a = cluster_->Connect(0);
  EXPECT_EQ(a->Put("", Pattern(1, 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Put(std::string(257, 'k'), Pattern(1, 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(a->Put(std::string(256, 'k'), Pattern(1, 1)).ok());
  auto big = a->Create("too/big", uint64_t{1} << 40);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("too/big"));
  ObjectName bad_ns{"bad ns!", "k"};
  EXPECT_EQ(a->Put(bad_ns, Pattern(1, 1)).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClusterTest, WritePastEndAndSealTwice) {
  auto a = cluster_->Connect(0);
  auto w = a->Create("w/1", 100);
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> ten(10, 1);
  EXPECT_TRUE(w->Write(90, ten).ok());
  absl::Status past = w->Write(95, ten);
  EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(past.message()), HasSubstr("w/1"));
  EXPECT_TRUE(w->Seal().ok());
  EXPECT_EQ(w->Seal().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ClusterTest, GetOfUnsealedObjectByAnotherClientWaitsThenFails) {
  auto writer = cluster_->Connect(0);
  auto reader = cluster_->Connect(0);
  auto w = writer->Create("unsealed/1", 1000);
  ASSERT_TRUE(w.ok());
  auto v = reader->Get("unsealed/1", absl::Milliseconds(300));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("not sealed"));
  std::thread sealer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(w->Seal().ok());
  });
  auto v2 = reader->Get("unsealed/1", absl::Seconds(10));
  sealer.join();
  EXPECT_TRUE(v2.ok()) << v2.status();
}

// Child mode: when re-executed with FERRY_TEST_CREATE_AND_HANG=<socket>, connect, create an
// object, write part of it, report "created" on stdout and wait to be killed.
const bool kChildMode = [] {
  const char* sock = std::getenv("FERRY_TEST_CREATE_AND_HANG");
  if (sock == nullptr) return false;
  auto c = Client::Connect(sock);
  if (!c.ok()) _exit(3);
  auto w = (*c)->Create("abandoned/1", 8 << 20);
  if (!w.ok()) _exit(4);
  std::memset(w->data(), 1, 1 << 20);
  std::printf("created\n");
  std::fflush(stdout);
  for (;;) pause();
}();

TEST_F(ClusterTest, ClientKilledMidCreateHasItsObjectReclaimed) {
  auto before = cluster_->Connect(2)->Status();
  ASSERT_TRUE(before.ok());
  const std::string out = cluster_->dir() + "/child.out";
  setenv("FERRY_TEST_CREATE_AND_HANG", cluster_->socket(2).c_str(), 1);
  pid_t child = LocalCluster::Spawn({"/proc/self/exe"}, out);
  unsetenv("FERRY_TEST_CREATE_AND_HANG");
  bool created = false;
  for (int i = 0; i < 200 && !created; ++i) {
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    created = text.find("created") != std::string::npos;
    if (!created) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(created);
  EXPECT_GT(cluster_->Connect(2)->Status()->self.arena_used, before->self.arena_used);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  uint64_t used = ~0ull;
  while (absl::Now() < deadline) {
    used = cluster_->Connect(2)->Status()->self.arena_used;
    if (used == before->self.arena_used) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(used, before->self.arena_used);
  auto again = cluster_->Connect(2)->Put("abandoned/1", Pattern(10, 1));
  EXPECT_TRUE(again.ok()) << again;   // the name is free again
}

TEST_F(ClusterTest, MalformedRpcsAreRejectedAndNothingBreaks) {
  auto channel = grpc::CreateChannel("unix:" + cluster_->socket(0), grpc::InsecureChannelCredentials());
  auto stub = proto::Sidecar::NewStub(channel);
  {
    grpc::ClientContext ctx;
    proto::CreateRequest req;   // no session
    req.mutable_ref()->set_ns("default");
    req.mutable_ref()->set_key("x");
    proto::CreateReply reply;
    grpc::Status s = stub->Create(&ctx, req, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("session"));
  }
  {
    // A raw byte stream that is not HTTP/2 at all.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = cluster_->socket(0);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
    std::vector<uint8_t> junk = Pattern(4096, 99);
    EXPECT_GT(write(fd, junk.data(), junk.size()), 0);
    close(fd);
  }
  {
    // Truncated arena channel use: connect and hang up at once.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = cluster_->socket(0) + ".arena";
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
    close(fd);
  }
  auto c = cluster_->Connect(0);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->Put("after/junk", Pattern(10, 1)).ok());   // still serving
}

TEST_F(ClusterTest, SecondFerrydOnSameSocketIsRefused) {
  std::string log = cluster_->dir() + "/dup.log";
  pid_t pid = LocalCluster::Spawn({LocalCluster::Bin("ferryd"), "--name", "dup", "--coord", cluster_->coord_address(),
                                   "--socket", cluster_->socket(0), "--arena", "16MiB"},
                                  log);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("another ferryd is already serving socket"));
  EXPECT_TRUE(cluster_->Connect(0)->Put("after/dup", Pattern(10, 1)).ok());
}

TEST_F(ClusterTest, DeleteIsClusterWideAndKeepsLiveViews) {
  auto a = cluster_->Connect(0);
  auto b = cluster_->Connect(1);
  ASSERT_TRUE(a->Put("del/1", Pattern(1 << 20, 5)).ok());
  auto view = b->Get("del/1", absl::Seconds(10));
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(a->Delete("del/1").ok());
  EXPECT_EQ(0, std::memcmp(view->data(), Pattern(1 << 20, 5).data(), 1 << 20));   // still valid
  EXPECT_EQ(a->Delete("del/1").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b->Get("del/1", absl::Milliseconds(200)).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClusterTest, EvictionWhenFullAndResourceExhaustedWhenPinned) {
  auto c = cluster_->Connect(2);
  std::vector<ObjectView> pins;
  // Fill the 160 MiB arena with pinned 30 MiB objects.
  int made = 0;
  for (int i = 0; i < 10; ++i) {
    if (!c->Put("fill/" + std::to_string(i), Pattern(30 << 20, i)).ok()) break;
    auto v = c->Get("fill/" + std::to_string(i), absl::Seconds(1));
    ASSERT_TRUE(v.ok());
    pins.push_back(std::move(*v));
    ++made;
  }
  ASSERT_GE(made, 4);
  absl::Status full = c->Put("fill/over", Pattern(40 << 20, 1));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  pins.clear();   // unpinned: now evictable
  EXPECT_TRUE(c->Put("fill/over", Pattern(40 << 20, 1)).ok());
  auto st = c->Status();
  EXPECT_GT(st->evictions, 0u);
}

TEST_F(ClusterTest, CliPutGetLsStatus) {
  std::string dir = cluster_->dir();
  std::string ferry = LocalCluster::Bin("ferry");
  std::vector<uint8_t> data = Pattern(3 << 20, 77);
  {
    std::ofstream f(dir + "/cli-in.bin", std::ios::binary);
    f.write(reinterpret_cast<const char*>(data.data()), data.size());
  }
  auto run = [&](const std::string& args) {
    return std::system((ferry + " " + args + " > " + dir + "/cli.out 2>&1").c_str());
  };
  EXPECT_EQ(0, run("--socket " + cluster_->socket(0) + " put " + dir + "/cli-in.bin cli/obj"));
  EXPECT_EQ(0, run("--socket " + cluster_->socket(1) + " get cli/obj " + dir + "/cli-out.bin"));
  std::ifstream in(dir + "/cli-out.bin", std::ios::binary);
  std::vector<uint8_t> got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, data);
  EXPECT_EQ(0, run("--socket " + cluster_->socket(1) + " ls cli/"));
  std::ifstream ls(dir + "/cli.out");
  std::string text((std::istreambuf_iterator<char>(ls)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("cli/obj"));
  EXPECT_EQ(0, run("--socket " + cluster_->socket(2) + " status"));
  EXPECT_NE(0, run("--socket " + cluster_->socket(1) + " get cli/missing /dev/null --timeout 200ms"));
  EXPECT_NE(0, run("--socket " + dir + "/nobody.sock status"));
}

}  // namespace
}  // namespace ferry::testing
