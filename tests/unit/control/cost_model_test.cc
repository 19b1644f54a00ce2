// Tests of control/planner/cost_model.h.
#include "control/planner/cost_model.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace ferry::control {
namespace {

constexpr uint64_t kMiB = 1 << 20;

LinkModel GigabitLink() {
  LinkModel link;
  link.bandwidth_Bps = 117.6e6;
  link.latency_s = 100e-6;
  return link;
}

TEST(TreeDepthTest, Values) {
  EXPECT_EQ(TreeDepth(0, 1), 0u);
  EXPECT_EQ(TreeDepth(0, 4), 0u);
  EXPECT_EQ(TreeDepth(7, 1), 7u);
  EXPECT_EQ(TreeDepth(7, 0), 7u);   // fanout 0 treated as a chain
  EXPECT_EQ(TreeDepth(1, 2), 1u);
  EXPECT_EQ(TreeDepth(2, 2), 1u);
  EXPECT_EQ(TreeDepth(3, 2), 2u);
  EXPECT_EQ(TreeDepth(6, 2), 2u);
  EXPECT_EQ(TreeDepth(7, 2), 3u);
  EXPECT_EQ(TreeDepth(14, 2), 3u);
  EXPECT_EQ(TreeDepth(15, 2), 4u);
  EXPECT_EQ(TreeDepth(16, 16), 1u);
  EXPECT_EQ(TreeDepth(17, 16), 2u);
  EXPECT_EQ(TreeDepth(1ull << 40, 1), 1u << 30) << "chains are capped";
  EXPECT_EQ(TreeDepth(1000000, 1000), 2u);
}

TEST(PredictBroadcastTest, NoReceiversCostsNothingAndChainMatchesFormula) {
  LinkModel link = GigabitLink();
  EXPECT_EQ(PredictBroadcast(kMiB, 0, 1, 65536, link), 0.0);
  const double s = 8 * kMiB, c = kMiB, b = link.bandwidth_Bps;
  const double expected = s / b + 2 * c / b + 3 * link.latency_s + 8 * link.chunk_overhead_s;
  EXPECT_NEAR(PredictBroadcast(8 * kMiB, 3, 1, kMiB, link), expected, 1e-9);
  // Wider trees pay f times the upload per node.
  EXPECT_GT(PredictBroadcast(256 * kMiB, 7, 2, kMiB, link),
            PredictBroadcast(256 * kMiB, 7, 1, kMiB, link));
  // Zero-byte objects are finite.
  EXPECT_GT(PredictBroadcast(0, 3, 1, kMiB, link), 0.0);
  EXPECT_LT(PredictBroadcast(0, 3, 1, kMiB, link), 1.0);
}

TEST(PlanBroadcastTest, LargeObjectGetsAChainWithBigChunks) {
  LinkModel link = GigabitLink();
  BroadcastPlan plan = PlanBroadcast(256 * kMiB, 7, link);
  EXPECT_EQ(plan.fanout, 1u);
  EXPECT_GE(plan.chunk_size, 256u * 1024);
  EXPECT_LE(plan.chunk_size, 4 * kMiB);
  const double ideal = 256.0 * kMiB / link.bandwidth_Bps;
  EXPECT_GE(plan.predicted_s, ideal);
  EXPECT_LT(plan.predicted_s, 1.1 * ideal);
  EXPECT_GE(plan.window, 2u);
  EXPECT_LE(plan.window, 16u);
}

TEST(PlanBroadcastTest, OneMegabyteObjectGetsSmallChunksAndNearLineRate) {
  LinkModel link = GigabitLink();
  BroadcastPlan plan = PlanBroadcast(kMiB, 7, link);
  EXPECT_LE(plan.chunk_size, 256u * 1024);
  const double ideal = static_cast<double>(kMiB) / link.bandwidth_Bps;
  EXPECT_LT(plan.predicted_s, 2 * ideal) << "fanout " << plan.fanout << " chunk " << plan.chunk_size;
}

TEST(PlanBroadcastTest, TinyObjectGetsAWiderTree) {
  BroadcastPlan plan = PlanBroadcast(4096, 7, GigabitLink());
  EXPECT_GT(plan.fanout, 1u);
  EXPECT_LE(plan.fanout, 7u);
}

TEST(PlanBroadcastTest, FanoutNeverExceedsReceiversOrLimit) {
  for (uint64_t receivers : {1ull, 2ull, 5ull, 100ull}) {
    BroadcastPlan plan = PlanBroadcast(64, receivers, GigabitLink());
    EXPECT_LE(plan.fanout, receivers);
    EXPECT_LE(plan.fanout, 16u);
    EXPECT_GE(plan.fanout, 1u);
  }
  PlanLimits limits;
  limits.max_fanout = 3;
  EXPECT_LE(PlanBroadcast(64, 100, GigabitLink(), limits).fanout, 3u);
  EXPECT_EQ(PlanBroadcast(kMiB, 0, GigabitLink()).fanout, 1u);
}

TEST(PlanBroadcastTest, FixedFanoutAndChunkAreRespected) {
  LinkModel link = GigabitLink();
  PlanLimits limits;
  limits.fixed_fanout = 7;   // a star
  BroadcastPlan star = PlanBroadcast(256 * kMiB, 7, link, limits);
  EXPECT_EQ(star.fanout, 7u);
  limits.fixed_chunk = 128 * 1024;
  BroadcastPlan both = PlanBroadcast(256 * kMiB, 7, link, limits);
  EXPECT_EQ(both.fanout, 7u);
  EXPECT_EQ(both.chunk_size, 128u * 1024);
  EXPECT_NEAR(both.predicted_s, PredictBroadcast(256 * kMiB, 7, 7, 128 * 1024, link), 1e-9);

  PlanLimits chunk_only;
  chunk_only.fixed_chunk = 512 * 1024;
  BroadcastPlan c = PlanBroadcast(256 * kMiB, 7, link, chunk_only);
  EXPECT_EQ(c.chunk_size, 512u * 1024);
  EXPECT_EQ(c.fanout, 1u);
}

TEST(PlanBroadcastTest, FixedValuesOutsideTheSearchGridAreStillRespected) {
  LinkModel link = GigabitLink();
  PlanLimits limits;
  limits.fixed_fanout = 32;   // above max_fanout and above the receiver count
  BroadcastPlan wide = PlanBroadcast(kMiB, 7, link, limits);
  EXPECT_EQ(wide.fanout, 32u);
  EXPECT_GT(wide.predicted_s, 0.0);

  PlanLimits odd_chunk;
  odd_chunk.fixed_chunk = 100000;   // not a power-of-two multiple of min_chunk
  BroadcastPlan c = PlanBroadcast(kMiB, 7, link, odd_chunk);
  EXPECT_EQ(c.chunk_size, 100000u);
  EXPECT_GT(c.predicted_s, 0.0);
  odd_chunk.fixed_fanout = 2;
  BroadcastPlan c2 = PlanBroadcast(kMiB, 7, link, odd_chunk);
  EXPECT_EQ(c2.chunk_size, 100000u);
  EXPECT_EQ(c2.fanout, 2u);
}

TEST(WindowForTest, StaysWithinBounds) {
  LinkModel link = GigabitLink();
  for (uint32_t chunk : {0u, 1u, 4096u, 65536u, 1u << 20, 1u << 30, UINT32_MAX}) {
    uint32_t w = WindowFor(chunk, link);
    EXPECT_GE(w, 2u) << chunk;
    EXPECT_LE(w, 16u) << chunk;
  }
  LinkModel fast;
  fast.bandwidth_Bps = 50e9;
  fast.latency_s = 1e-3;
  EXPECT_EQ(WindowFor(4096, fast), 16u);
  EXPECT_EQ(WindowFor(1u << 30, link), 2u);           // huge chunks: the floor of 2
  EXPECT_EQ(WindowFor(4u << 20, link), 8u);           // at least 32 MiB in flight
  EXPECT_EQ(WindowFor(64 * 1024, link), 16u);         // capped at 16
  // Bigger chunks never need a larger window.
  EXPECT_GE(WindowFor(64 * 1024, link), WindowFor(4 * 1024 * 1024, link));
}

}  // namespace
}  // namespace ferry::control
