// Batch broadcast on a local cluster of real processes: a model-like batch (many small tensors
// packed together plus a few large ones) reaches every node byte for byte; per-entry failures
// (an unknown object, one deleted while the batch runs) fail alone; bad batches are refused with
// a message naming the entry; a receiver SIGKILLed mid-batch fails alone while the others
// (including the ones it was serving) finish.
#include <csignal>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kNodes = 5;

class BatchBroadcastTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = kNodes;
    o.arena = "256MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Puts `sizes.size()` objects prefix/i on node `root`; returns their names and checksums.
  static std::vector<ObjectName> PutModel(int root, const std::string& prefix, const std::vector<size_t>& sizes,
                                          std::vector<uint64_t>* sums) {
    auto c = cluster_->Connect(root);
    std::vector<ObjectName> names;
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::vector<uint8_t> data = Pattern(sizes[i], 1000 + i);
      names.push_back(ObjectName{"default", prefix + "/" + std::to_string(i)});
      EXPECT_TRUE(c->Put(names.back(), data).ok());
      sums->push_back(Checksum(data.data(), data.size()));
    }
    return names;
  }
  // Node i holds every object locally, with the right bytes.
  static void ExpectHeld(int i, const std::vector<ObjectName>& names, const std::vector<uint64_t>& sums,
                         const std::vector<size_t>& sizes) {
    auto c = cluster_->Connect(i);
    for (size_t k = 0; k < names.size(); ++k) {
      auto v = c->Get(names[k], absl::Seconds(2));
      ASSERT_TRUE(v.ok()) << "node " << i << " " << names[k].key << ": " << v.status();
      EXPECT_FALSE(v->info().pulled) << "node " << i << " had no local copy of " << names[k].key;
      ASSERT_EQ(v->size(), sizes[k]);
      ASSERT_EQ(Checksum(v->data(), v->size()), sums[k]) << "node " << i << " " << names[k].key;
    }
  }
  static void Cleanup(const std::vector<ObjectName>& names) {
    auto c = cluster_->Connect(0);
    for (const ObjectName& n : names) (void)c->Delete(n);
  }

  static LocalCluster* cluster_;
};
LocalCluster* BatchBroadcastTest::cluster_ = nullptr;

TEST_F(BatchBroadcastTest, AModelOfSmallAndLargeTensorsReachesEveryNode) {
  // 600 small tensors (biases, norms: 0 B to 16 KiB, packed), a few of 100 KiB to 3 MiB
  // (pulled in chunks), sizes chosen to cross pack boundaries.
  std::vector<size_t> sizes;
  for (int i = 0; i < 600; ++i) sizes.push_back((i * 977) % 16385);
  for (size_t big : {size_t{100} << 10, size_t{1} << 20, (size_t{3} << 20) + 7}) sizes.push_back(big);
  sizes.push_back(0);
  std::vector<uint64_t> sums;
  std::vector<ObjectName> names = PutModel(2, "model/v1", sizes, &sums);
  auto root = cluster_->Connect(2);
  absl::StatusOr<BatchBroadcastResult> r = root->BroadcastBatch(names, {}, absl::Seconds(120));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->targets.size(), static_cast<size_t>(kNodes));
  for (const auto& t : r->targets) EXPECT_TRUE(t.ok) << t.node << ": " << t.error;
  EXPECT_TRUE(r->errors.empty()) << r->errors.front().error;
  uint64_t total = 0;
  for (size_t s : sizes) total += s;
  EXPECT_EQ(r->bytes, total);
  for (int i = 0; i < kNodes; ++i) ExpectHeld(i, names, sums, sizes);
  // A second broadcast of the same batch finds every copy in place.
  r = root->BroadcastBatch(names, {}, absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok());
  Cleanup(names);
}

TEST_F(BatchBroadcastTest, ABatchLargerThanOneInstructionArrivesWhole) {
  // More entries than one BatchPullInstruction carries (4,096): each target gets several,
  // which it must run in order (run at once they stalled the chain).
  constexpr size_t kCount = 4100;
  auto root = cluster_->Connect(1);
  std::vector<ObjectName> names;
  for (size_t i = 0; i < kCount; ++i) {
    names.push_back(ObjectName{"default", "many/v1/" + std::to_string(i)});
    const uint64_t v = i * 2654435761u;
    ASSERT_TRUE(root->Put(names.back(), std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), sizeof(v))).ok());
  }
  absl::StatusOr<BatchBroadcastResult> r = root->BroadcastBatch(names, {"n0", "n2", "n3"}, absl::Seconds(120));
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& t : r->targets) EXPECT_TRUE(t.ok) << t.node << ": " << t.error;
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(r->bytes, kCount * sizeof(uint64_t));
  for (int node : {0, 2, 3}) {
    auto c = cluster_->Connect(node);
    for (size_t i = 0; i < kCount; i += (i + 1 < kCount - 200 ? 97 : 1)) {   // a sample, and the last 200
      auto v = c->Get(names[i], absl::Seconds(2));
      ASSERT_TRUE(v.ok()) << "node " << node << " " << names[i].key << ": " << v.status();
      ASSERT_FALSE(v->info().pulled) << "node " << node << " had no local copy of " << names[i].key;
      uint64_t got = 0;
      ASSERT_EQ(v->size(), sizeof(got));
      std::memcpy(&got, v->data(), sizeof(got));
      ASSERT_EQ(got, i * 2654435761u) << names[i].key;
    }
  }
  Cleanup(names);
}

TEST_F(BatchBroadcastTest, AnUnknownEntryFailsAloneAndTheOthersArrive) {
  std::vector<uint64_t> sums;
  std::vector<size_t> sizes = {4096, 300, 70000};
  std::vector<ObjectName> names = PutModel(0, "partial/v1", sizes, &sums);
  std::vector<ObjectName> with_missing = names;
  with_missing.insert(with_missing.begin() + 1, ObjectName{"default", "partial/v1/no-such"});
  absl::StatusOr<BatchBroadcastResult> r =
      cluster_->Connect(0)->BroadcastBatch(with_missing, {"n1", "n3"}, absl::Seconds(60));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_EQ(r->errors[0].index, 1u);
  EXPECT_EQ(r->errors[0].code, absl::StatusCode::kNotFound);
  EXPECT_THAT(r->errors[0].error, HasSubstr("no-such"));
  EXPECT_TRUE(r->errors[0].node.empty());
  ExpectHeld(1, names, sums, sizes);
  ExpectHeld(3, names, sums, sizes);
  Cleanup(names);
}

TEST_F(BatchBroadcastTest, BadBatchesAreRefusedNamingTheEntry) {
  auto c = cluster_->Connect(0);
  ASSERT_TRUE(c->Put("bad/a", Pattern(10, 1)).ok());
  auto expect_invalid = [&](std::vector<ObjectName> names, const std::string& says) {
    absl::StatusOr<BatchBroadcastResult> r = c->BroadcastBatch(names, {}, absl::Seconds(5));
    ASSERT_FALSE(r.ok()) << "accepted a batch that should say: " << says;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(says));
  };
  expect_invalid({}, "names no objects");
  expect_invalid({{"default", "bad/a"}, {"default", "bad/a"}}, "entries 0 and 1 both name default/bad/a");
  expect_invalid({{"default", "bad/a"}, {"other", "bad/a"}}, "a batch is one namespace");
  expect_invalid({{"default", "bad/a"}, {"default", ""}}, "entry 1");
  expect_invalid({{"default", "bad/a"}, {"bad ns", "x"}}, "entry 1");
  absl::StatusOr<BatchBroadcastResult> r = c->BroadcastBatch({{ObjectName{"default", "bad/a"}}}, {"nope"},
                                                             absl::Seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("no node named 'nope'"));
  // The stored object is untouched.
  auto v = c->Get("bad/a", absl::Seconds(1));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(Checksum(v->data(), v->size()), Checksum(Pattern(10, 1).data(), 10));
  (void)c->Delete("bad/a");
}

TEST_F(BatchBroadcastTest, AReceiverKilledMidBatchFailsAloneAndTheRestFinish) {
  // Large enough to take a while on loopback, so the kill lands mid-transfer.
  std::vector<size_t> sizes;
  for (int i = 0; i < 40; ++i) sizes.push_back(4 << 20);
  for (int i = 0; i < 200; ++i) sizes.push_back(8192);
  std::vector<uint64_t> sums;
  std::vector<ObjectName> names = PutModel(0, "kill/v1", sizes, &sums);
  std::thread killer([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    cluster_->Kill(2, SIGKILL);
  });
  absl::StatusOr<BatchBroadcastResult> r = cluster_->Connect(0)->BroadcastBatch(names, {}, absl::Seconds(120));
  killer.join();
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& t : r->targets) {
    if (t.node == "n2") {
      // Either it finished before the kill or it is reported dead; never a silent success.
      if (!t.ok) {
        EXPECT_THAT(t.error, HasSubstr("died"));
      }
    } else {
      EXPECT_TRUE(t.ok) << t.node << ": " << t.error;
    }
  }
  for (int i : {1, 3, 4}) ExpectHeld(i, names, sums, sizes);
  Cleanup(names);
}

}  // namespace
}  // namespace ferry::testing
