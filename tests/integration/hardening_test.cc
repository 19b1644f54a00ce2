// Real ferry-coord + ferryd processes: the data-loss and split-brain cases of the hardening
// issue (deletes racing Gets, resurrection after a coordinator restart, ids reused by another
// process, a Get waiting for a key that is then put on the same node, eviction named in errors).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <cstring>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

class HardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = 3;
    o.arena = "96MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static LocalCluster* cluster_;
};
LocalCluster* HardeningTest::cluster_ = nullptr;

// Puts `key` on node 0, starts a Get of it on node 1 and deletes it from node 0 at once. Once
// Delete has returned and the Get has finished (either way), no node may return the bytes.
void DeleteRacingGet(LocalCluster& cluster, const std::string& key, size_t size, int round) {
  auto a = cluster.Connect(0);
  auto b = cluster.Connect(1);
  ASSERT_TRUE(a && b);
  std::vector<uint8_t> data = Pattern(size, round);
  ASSERT_TRUE(a->Put(key, data).ok());
  absl::Status got;
  std::thread getter([&] {
    // A Get that reaches the coordinator after the delete waits for the key to be created
    // again: keep that wait short.
    absl::StatusOr<ObjectView> v = b->Get(key, absl::Seconds(2));
    got = v.status();
    if (v.ok()) {
      EXPECT_EQ(Checksum(v->data(), v->size()), Checksum(data.data(), data.size()));
    }
  });
  // Vary the moment of the delete across rounds, from before the Get reaches ferryd to
  // after it finished.
  std::this_thread::sleep_for(std::chrono::microseconds((round % 8) * 250));
  ASSERT_TRUE(a->Delete(key).ok()) << key;
  getter.join();
  EXPECT_TRUE(got.ok() || got.code() == absl::StatusCode::kNotFound ||
              got.code() == absl::StatusCode::kDeadlineExceeded)
      << got;
  for (int i = 0; i < 3; ++i) {
    auto c = cluster.Connect(i);
    ASSERT_TRUE(c);
    absl::StatusOr<ObjectView> after = c->Get(key, absl::ZeroDuration());
    EXPECT_FALSE(after.ok()) << key << " survived its delete on node " << i << " (round " << round
                             << ", concurrent get: " << got << ")";
  }
}

TEST_F(HardeningTest, DeleteWinsOverInFlightGetsAndNeverComesBack) {
  for (int round = 0; round < 16; ++round) {
    DeleteRacingGet(*cluster_, "race/inline-" + std::to_string(round), 1024, round);
    DeleteRacingGet(*cluster_, "race/pulled-" + std::to_string(round), 3 << 20, round);
    if (HasFatalFailure()) return;
  }
  // After a coordinator restart every node re-reports what it holds: nothing deleted returns.
  cluster_->KillCoordinator(SIGKILL);
  ASSERT_TRUE(cluster_->RestartCoordinator().ok());
  ASSERT_TRUE(cluster_->WaitAlive(2, 3, absl::Seconds(30)).ok());
  auto c = cluster_->Connect(2);
  ASSERT_TRUE(c);
  absl::StatusOr<std::vector<ObjectInfo>> listed = c->List("", "race/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty()) << listed->size() << " deleted objects came back, first "
                               << (*listed)[0].name.key;
}

// A Hello that reuses a live node's id (another process) is refused; the live node keeps
// its session and its objects.
TEST_F(HardeningTest, HelloReusingALiveIdIsRefused) {
  auto a = cluster_->Connect(0);
  ASSERT_TRUE(a);
  std::vector<uint8_t> data = Pattern(2 << 20, 5);
  ASSERT_TRUE(a->Put("id/kept", data).ok());
  absl::StatusOr<NodeStatus> st = a->Status();
  ASSERT_TRUE(st.ok());
  const uint64_t victim = st->self.id;

  auto channel = grpc::CreateChannel(cluster_->coord_address(), grpc::InsecureChannelCredentials());
  auto stub = proto::Coordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->Session(&ctx);
  proto::NodeMessage hello;
  hello.mutable_hello()->mutable_node()->set_node_id(victim);
  hello.mutable_hello()->mutable_node()->set_name("impostor");
  hello.mutable_hello()->mutable_node()->set_dp_address("not-an-address");
  hello.mutable_hello()->set_session_secret("guess");
  ASSERT_TRUE(stream->Write(hello));
  stream->WritesDone();
  proto::CoordMessage msg;
  EXPECT_FALSE(stream->Read(&msg)) << "the coordinator welcomed an impostor";
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("in use by live node"));

  // The victim was never marked dead: its object is still there for others.
  auto b = cluster_->Connect(1);
  ASSERT_TRUE(b);
  absl::StatusOr<ObjectView> v = b->Get("id/kept", absl::Seconds(20));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Checksum(v->data(), v->size()), Checksum(data.data(), data.size()));
  absl::StatusOr<NodeStatus> after = b->Status();
  ASSERT_TRUE(after.ok());
  for (const NodeInfo& n : after->cluster) {
    if (n.id == victim) {
      EXPECT_TRUE(n.alive);
    }
  }
}

// A second ferryd with a live node's name is refused at startup (exit 2, naming the
// conflict) instead of running with objects nobody can see.
TEST_F(HardeningTest, FerrydWithALiveNodesNameRefusesToStart) {
  const std::string log = cluster_->dir() + "/dup.log";
  pid_t pid = LocalCluster::Spawn({LocalCluster::Bin("ferryd"), "--name", "n0", "--coord", cluster_->coord_address(),
                                   "--socket", cluster_->dir() + "/dup.sock", "--arena", "16MiB"},
                                  log);
  ASSERT_GT(pid, 0);
  int status = 0;
  bool exited = false;
  for (int t = 0; t < 300 && !exited; ++t) {   // 15 s
    exited = waitpid(pid, &status, WNOHANG) == pid;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "ferryd with a duplicate name kept running; log " << log;
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("is in use by live node")) << text;
  // The live n0 is unaffected.
  EXPECT_EQ(cluster_->AliveCount(1), 3);
}

// A Get waiting for a key returns the local object when the key is then put on the same node.
TEST_F(HardeningTest, GetWaitingForAKeyReturnsALocalPut) {
  for (size_t size : {size_t{512}, size_t{4} << 20}) {
    const std::string key = "wait/local-" + std::to_string(size);
    auto a = cluster_->Connect(0);
    auto writer = cluster_->Connect(0);
    ASSERT_TRUE(a && writer);
    std::vector<uint8_t> data = Pattern(size, size);
    absl::StatusOr<ObjectView> got = absl::UnknownError("not run");
    std::thread getter([&] { got = a->Get(key, absl::Seconds(30)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));   // the Get is waiting
    ASSERT_TRUE(writer->Put(key, data).ok());
    getter.join();
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    ASSERT_EQ(got->size(), size);
    EXPECT_EQ(Checksum(got->data(), got->size()), Checksum(data.data(), data.size()));
  }
}

// Evicting an object's last copy is named in later errors (not "was not created").
TEST_F(HardeningTest, EvictedLastCopyIsNamed) {
  auto a = cluster_->Connect(2);
  auto b = cluster_->Connect(1);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Put("evict/victim", Pattern(8 << 20, 1)).ok());
  // Fill node 2's arena with unpinned objects until the victim has to go.
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(a->Put("evict/filler-" + std::to_string(i), Pattern(8 << 20, i + 2)).ok());
  }
  absl::StatusOr<ObjectView> v = b->Get("evict/victim", absl::Seconds(5));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss) << v.status();
  EXPECT_THAT(v.status().message(), HasSubstr("evicted from node"));
}

// End-to-end integrity: a checksummed object whose bytes are corrupted on one holder after
// Seal is detected by the receiver, which fetches it again from a good holder; with no good
// holder left the Get fails and names the mismatch. Nothing corrupted is ever returned.
TEST_F(HardeningTest, CorruptedCopyIsDetectedAndFetchedAgain) {
  // Roles by node id: the planner prefers the lowest id among equal copies, so the getter
  // asks the corrupted creator first.
  std::vector<std::pair<uint64_t, int>> ids;
  for (int i = 0; i < 3; ++i) {
    auto c = cluster_->Connect(i);
    ASSERT_TRUE(c);
    absl::StatusOr<NodeStatus> st = c->Status();
    ASSERT_TRUE(st.ok());
    ids.emplace_back(st->self.id, i);
  }
  std::sort(ids.begin(), ids.end());
  const int creator = ids[0].second, clean = ids[1].second, getter = ids[2].second;
  auto a = cluster_->Connect(creator);
  auto h = cluster_->Connect(clean);
  auto g = cluster_->Connect(getter);
  ASSERT_TRUE(a && h && g);
  const size_t size = 3 << 20;
  std::vector<uint8_t> data = Pattern(size, 99);
  ObjectMeta meta;
  meta.size = size;
  meta.checksum = true;
  absl::StatusOr<WritableObject> w = a->Create(ObjectName{"default", "sum/k"}, meta);
  ASSERT_TRUE(w.ok()) << w.status();
  uint8_t* bytes = w->data();   // the client's writable mapping of node `creator`'s arena
  std::memcpy(bytes, data.data(), size);
  ASSERT_TRUE(w->Seal().ok());
  absl::StatusOr<ObjectView> good = h->Get(ObjectName{"default", "sum/k"}, absl::Seconds(20));
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_TRUE(good->Release().ok());
  // Reports travel in the background: wait until the directory has both complete copies, so
  // that the getter's sender is chosen among equals (lowest id: the creator).
  for (int t = 0; t < 200; ++t) {
    absl::StatusOr<std::vector<ObjectInfo>> listed = g->List("default", "sum/k");
    if (listed.ok() && listed->size() == 1 && (*listed)[0].complete_copies == 2 && (*listed)[0].partial_copies == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  bytes[size / 2] ^= 0x5a;   // memory corruption on the creator, after Seal

  absl::StatusOr<NodeStatus> before = g->Status();
  ASSERT_TRUE(before.ok());
  absl::StatusOr<ObjectView> v = g->Get(ObjectName{"default", "sum/k"}, absl::Seconds(20));
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), size);
  EXPECT_EQ(0, std::memcmp(v->data(), data.data(), size)) << "corrupted bytes were returned";
  absl::StatusOr<NodeStatus> after = g->Status();
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->retries, before->retries) << "the corrupted creator was not asked first";

  // The same with no good holder: a second object, corrupted on its only holder.
  absl::StatusOr<WritableObject> w2 = a->Create(ObjectName{"default", "sum/only"}, meta);
  ASSERT_TRUE(w2.ok()) << w2.status();
  uint8_t* only = w2->data();
  std::memcpy(only, data.data(), size);
  ASSERT_TRUE(w2->Seal().ok());
  only[7] ^= 1;
  absl::StatusOr<ObjectView> bad = g->Get(ObjectName{"default", "sum/only"}, absl::Seconds(3));
  ASSERT_FALSE(bad.ok()) << "a corrupted copy was returned";
  EXPECT_THAT(bad.status().message(), HasSubstr("checksum mismatch")) << bad.status();
}

// ferryd shut down (SIGTERM) while 120 explicit-broadcast pulls run on it: every pull thread
// is joined before the store and transport go, so it exits cleanly and at once (under ASan:
// no use-after-free). The pulls are rate-capped so that they are all still running.
TEST(ShutdownTest, SigtermDuringManyBroadcastPullsExitsCleanly) {
  ClusterOptions o;
  o.nodes = 2;
  o.arena = "96MiB";
  o.ferryd_flags = {"--max-pull-rate", "1MiB"};
  LocalCluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << "logs in " << cluster.dir();
  auto a = cluster.Connect(0);
  ASSERT_TRUE(a);
  constexpr int kObjects = 120;
  for (int i = 0; i < kObjects; ++i) {
    ASSERT_TRUE(a->Put("many/" + std::to_string(i), Pattern(256 << 10, i)).ok());
  }
  std::vector<std::thread> broadcasts;
  for (int i = 0; i < kObjects; ++i) {
    broadcasts.emplace_back([&, i] {
      auto c = cluster.Connect(0);
      if (c) c->Broadcast(ObjectName{"default", "many/" + std::to_string(i)}, {"n1"}, absl::Seconds(20)).IgnoreError();
    });
  }
  // Wait until node 1 is pulling (its received bytes grow), then stop it.
  auto b = cluster.Connect(1);
  ASSERT_TRUE(b);
  for (int t = 0; t < 200; ++t) {
    absl::StatusOr<NodeStatus> st = b->Status();
    if (st.ok() && st->bytes_received > (1 << 20)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  b.reset();
  const int status = cluster.Kill(1, SIGTERM);
  for (std::thread& t : broadcasts) t.join();
  ASSERT_TRUE(WIFEXITED(status)) << "ferryd did not exit by itself within 4 s of SIGTERM (status " << status
                                 << "); log: " << cluster.log(1);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "log: " << cluster.log(1);
}

}  // namespace
}  // namespace ferry::testing
