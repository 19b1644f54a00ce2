// A reduce whose interior node is SIGKILLed mid-transfer (real processes, UCX over loopback,
// pulls capped at 16 MiB/s so the kill lands mid-way): with a spare input the spare takes the
// dead node's place and the path to the root is recomputed, so the result is correct and says
// which inputs it holds; without one the reduce fails with DATA_LOSS naming the lost input.
// Never a silently wrong result. The same for AllReduce, whose result broadcast is under way
// (overlapped with the reduce) when the node dies: the copies pulled so far are dropped and every
// live participant ends with the recomputed result.
#include <signal.h>

#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"
#include "tests/integration/reduce_reference.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr size_t kBytes = 16u << 20;
constexpr int kVictim = 2;   // position 2 of the chain 0 -> 1 -> 2 -> 3 (the root)

ClusterOptions Options() {
  ClusterOptions o;
  o.nodes = 5;
  o.arena = "160MiB";
  o.coord_flags = {"--fixed-chunk", "256KiB"};
  o.ferryd_flags = {"--window", "2", "--max-pull-rate", "16MiB"};
  o.liveness_ms = 1500;
  return o;
}

uint64_t BytesReceived(LocalCluster& c, int i) {
  auto st = c.Connect(i)->Status();
  return st.ok() ? st->bytes_received : 0;
}

struct KillRun {
  std::vector<std::vector<uint8_t>> data;
  std::vector<ObjectName> names;
  uint64_t victim_received = 0;   // when it was killed
  absl::StatusOr<ReduceResult> result = absl::UnknownError("not run");
};

// Puts `inputs` inputs on nodes 0.., reduces the first `k` (a chain: the object is large), and
// SIGKILLs node kVictim once it has received 2 MiB of its child's partial sum.
KillRun ReduceAndKill(LocalCluster& cluster, int inputs, uint32_t k, bool all = false) {
  KillRun run;
  for (int i = 0; i < inputs; ++i) {
    run.data.push_back(ReduceInput(ReduceOp::kSum, DType::kF32, kBytes / 4, 300 + i));
    run.names.push_back(ObjectName{"default", absl::StrCat("rf/in", i)});
    EXPECT_TRUE(cluster.Connect(i)->Put(run.names.back(), run.data.back(), DType::kF32).ok());
  }
  auto call = std::async(std::launch::async, [&] {
    const ObjectName out{"default", "rf/out"};
    auto client = cluster.Connect(0);
    return all ? client->AllReduce(run.names, out, ReduceOp::kSum, DType::kF32, k, absl::Seconds(90))
               : client->Reduce(run.names, out, ReduceOp::kSum, DType::kF32, k, absl::Seconds(90));
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && (run.victim_received = BytesReceived(cluster, kVictim)) < (2u << 20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  run.victim_received = BytesReceived(cluster, kVictim);
  cluster.Kill(kVictim, SIGKILL);
  run.result = call.get();
  return run;
}

TEST(ReduceFaultTest, ASpareTakesTheKilledInteriorNodesPlaceAndTheResultIsCorrect) {
  LocalCluster cluster(Options());
  ASSERT_TRUE(cluster.Start().ok()) << "logs in " << cluster.dir();
  KillRun run = ReduceAndKill(cluster, 5, 4);
  ASSERT_GE(run.victim_received, 2u << 20) << "the victim never received its child's data";
  ASSERT_LT(run.victim_received, kBytes) << "the kill came after the victim's partial sum was complete";
  ASSERT_TRUE(run.result.ok()) << run.result.status();
  EXPECT_THAT(run.result->used, UnorderedElementsAre(0u, 1u, 3u, 4u));
  auto v = cluster.Connect(0)->Get(ObjectName{"default", "rf/out"}, absl::Seconds(30));
  ASSERT_TRUE(v.ok()) << v.status();
  const std::string diff = FirstDifference(
      DType::kF32, ReduceReference(ReduceOp::kSum, DType::kF32, {run.data[0], run.data[1], run.data[3], run.data[4]}),
      v->data(), v->size());
  EXPECT_EQ(diff, "");
}

TEST(ReduceFaultTest, WithoutASpareTheReduceFailsNamingTheLostInput) {
  LocalCluster cluster(Options());
  ASSERT_TRUE(cluster.Start().ok()) << "logs in " << cluster.dir();
  KillRun run = ReduceAndKill(cluster, 4, 4);
  ASSERT_GE(run.victim_received, 2u << 20) << "the victim never received its child's data";
  ASSERT_LT(run.victim_received, kBytes) << "the kill came after the victim's partial sum was complete";
  ASSERT_FALSE(run.result.ok()) << "a reduce that lost an input answered OK";
  EXPECT_EQ(run.result.status().code(), absl::StatusCode::kDataLoss) << run.result.status();
  EXPECT_THAT(std::string(run.result.status().message()), HasSubstr("default/rf/in2"));
  // No result was published.
  EXPECT_EQ(cluster.Connect(0)->Get(ObjectName{"default", "rf/out"}, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ReduceFaultTest, AllReduceWithASpareLeavesTheRecomputedResultOnEveryLiveParticipant) {
  LocalCluster cluster(Options());
  ASSERT_TRUE(cluster.Start().ok()) << "logs in " << cluster.dir();
  KillRun run = ReduceAndKill(cluster, 5, 4, /*all=*/true);
  ASSERT_GE(run.victim_received, 2u << 20) << "the victim never received its child's data";
  ASSERT_LT(run.victim_received, kBytes) << "the kill came after the victim's partial sum was complete";
  ASSERT_TRUE(run.result.ok()) << run.result.status();
  EXPECT_THAT(run.result->used, UnorderedElementsAre(0u, 1u, 3u, 4u));
  const std::vector<uint8_t> want =
      ReduceReference(ReduceOp::kSum, DType::kF32, {run.data[0], run.data[1], run.data[3], run.data[4]});
  std::vector<std::string> holders;
  for (const BroadcastResult::Target& t : run.result->copies) {
    EXPECT_TRUE(t.ok) << t.node << ": " << t.error;
    holders.push_back(t.node);
  }
  EXPECT_THAT(holders, UnorderedElementsAre("n0", "n1", "n3", "n4"));
  for (int i : {0, 1, 3, 4}) {
    auto v = cluster.Connect(i)->Get(ObjectName{"default", "rf/out"}, absl::Seconds(30));
    ASSERT_TRUE(v.ok()) << "node " << i << ": " << v.status();
    EXPECT_FALSE(v->info().pulled) << "node " << i << " had no copy of the result";
    EXPECT_EQ(FirstDifference(DType::kF32, want, v->data(), v->size()), "") << "node " << i;
  }
}

TEST(ReduceFaultTest, AllReduceWithoutASpareFailsAndLeavesNoCopyOfTheResult) {
  LocalCluster cluster(Options());
  ASSERT_TRUE(cluster.Start().ok()) << "logs in " << cluster.dir();
  KillRun run = ReduceAndKill(cluster, 4, 4, /*all=*/true);
  ASSERT_GE(run.victim_received, 2u << 20) << "the victim never received its child's data";
  ASSERT_LT(run.victim_received, kBytes) << "the kill came after the victim's partial sum was complete";
  ASSERT_FALSE(run.result.ok()) << "an allreduce that lost an input answered OK";
  EXPECT_EQ(run.result.status().code(), absl::StatusCode::kDataLoss) << run.result.status();
  EXPECT_THAT(std::string(run.result.status().message()), HasSubstr("default/rf/in2"));
  // Neither the directory nor any node keeps (a part of) the unfinished result: the receivers'
  // pulls end on the drops the failure sent (a Get meanwhile says the key is still being pulled).
  for (int i : {0, 1, 3}) {
    absl::StatusCode code = absl::StatusCode::kUnknown;
    for (const absl::Time until = absl::Now() + absl::Seconds(10); absl::Now() < until;) {
      code = cluster.Connect(i)->Get(ObjectName{"default", "rf/out"}, absl::ZeroDuration()).status().code();
      if (code != absl::StatusCode::kDeadlineExceeded) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(code, absl::StatusCode::kNotFound) << "node " << i;
  }
}

}  // namespace
}  // namespace ferry::testing
