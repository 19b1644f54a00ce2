// Broadcast correctness on a local 8-node cluster of real processes: explicit broadcasts of
// sizes 0 B to 256 MiB, many concurrent broadcasts of different objects from different
// roots, and implicit broadcast with receivers arriving at random times.
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

constexpr int kNodes = 8;

class BroadcastTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = kNodes;
    o.arena = "300MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Every node's local copy of `key` has the checksum `want`.
  static void ExpectEverywhere(const std::string& key, uint64_t want, size_t size) {
    for (int i = 0; i < kNodes; ++i) {
      auto c = cluster_->Connect(i);
      auto v = c->Get(key, absl::Seconds(1));
      ASSERT_TRUE(v.ok()) << "node " << i << ": " << v.status();
      EXPECT_FALSE(v->info().pulled) << "node " << i << " had no local copy of " << key;
      ASSERT_EQ(v->size(), size);
      EXPECT_EQ(Checksum(v->data(), v->size()), want) << "node " << i << " " << key;
    }
  }
  static void Cleanup(const std::string& key) { EXPECT_TRUE(cluster_->Connect(0)->Delete(key).ok()); }

  static LocalCluster* cluster_;
};
LocalCluster* BroadcastTest::cluster_ = nullptr;

TEST_F(BroadcastTest, ExplicitBroadcastOfEverySize) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{65536}, size_t{65537}, size_t{1} << 20, size_t{16} << 20,
                      size_t{256} << 20}) {
    const std::string key = "bcast/size/" + std::to_string(size);
    std::vector<uint8_t> data = Pattern(size, size + 1);
    const uint64_t want = Checksum(data.data(), data.size());
    auto root = cluster_->Connect(3);
    ASSERT_TRUE(root->Put(key, data).ok());
    data.clear();
    data.shrink_to_fit();
    absl::StatusOr<BroadcastResult> r = root->Broadcast({"default", key}, {}, absl::Seconds(120));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->targets.size(), static_cast<size_t>(kNodes));
    for (const auto& t : r->targets) EXPECT_TRUE(t.ok) << t.node << ": " << t.error;
    ExpectEverywhere(key, want, size);
    Cleanup(key);
  }
}

TEST_F(BroadcastTest, BroadcastToNamedNodesOnly) {
  std::vector<uint8_t> data = Pattern(4 << 20, 9);
  auto root = cluster_->Connect(0);
  ASSERT_TRUE(root->Put("bcast/some", data).ok());
  auto r = root->Broadcast({"default", "bcast/some"}, {"n2", "n5"}, absl::Seconds(60));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->targets.size(), 2u);
  for (int i : {2, 5}) {
    auto v = cluster_->Connect(i)->Get("bcast/some", absl::Seconds(1));
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->info().pulled);
  }
  auto bad = root->Broadcast({"default", "bcast/some"}, {"no-such-node"}, absl::Seconds(5));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("no-such-node"));
  auto missing = root->Broadcast({"default", "bcast/none"}, {}, absl::Seconds(1));
  EXPECT_FALSE(missing.ok());
  Cleanup("bcast/some");
}

TEST_F(BroadcastTest, ManyConcurrentBroadcastsFromDifferentRoots) {
  constexpr int kObjects = 8;
  constexpr size_t kSize = 8 << 20;
  std::vector<std::future<absl::Status>> runs;
  for (int j = 0; j < kObjects; ++j) {
    runs.push_back(std::async(std::launch::async, [j]() -> absl::Status {
      auto root = cluster_->Connect(j % kNodes);
      const std::string key = "bcast/many/" + std::to_string(j);
      if (absl::Status s = root->Put(key, Pattern(kSize, 100 + j)); !s.ok()) return s;
      auto r = root->Broadcast({"default", key}, {}, absl::Seconds(120));
      if (!r.ok()) return r.status();
      for (const auto& t : r->targets) {
        if (!t.ok) return absl::InternalError(t.node + ": " + t.error);
      }
      return absl::OkStatus();
    }));
  }
  for (auto& r : runs) EXPECT_TRUE(r.get().ok());
  for (int j = 0; j < kObjects; ++j) {
    std::vector<uint8_t> want = Pattern(kSize, 100 + j);
    ExpectEverywhere("bcast/many/" + std::to_string(j), Checksum(want.data(), want.size()), kSize);
    Cleanup("bcast/many/" + std::to_string(j));
  }
}

TEST_F(BroadcastTest, ImplicitBroadcastWithReceiversArrivingAtRandomTimes) {
  constexpr size_t kSize = 96 << 20;
  std::vector<uint8_t> data = Pattern(kSize, 42);
  const uint64_t want = Checksum(data.data(), data.size());
  // Receivers start before the object exists, during the put, and later.
  std::mt19937 rng(7);
  std::vector<std::future<absl::StatusOr<uint64_t>>> gets;
  for (int i = 1; i < kNodes; ++i) {
    const int delay_ms = static_cast<int>(rng() % 600);
    gets.push_back(std::async(std::launch::async, [i, delay_ms]() -> absl::StatusOr<uint64_t> {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      auto c = cluster_->Connect(i);
      auto v = c->Get("bcast/implicit", absl::Seconds(120));
      if (!v.ok()) return v.status();
      return Checksum(v->data(), v->size());
    }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(cluster_->Connect(0)->Put("bcast/implicit", data).ok());
  for (auto& g : gets) {
    auto sum = g.get();
    ASSERT_TRUE(sum.ok()) << sum.status();
    EXPECT_EQ(*sum, want);
  }
  Cleanup("bcast/implicit");
}

}  // namespace
}  // namespace ferry::testing
