// Reduce tree shapes, chain lengths and predicted times (control/planner/reduce_shape.h).
#include "control/planner/reduce_shape.h"

#include <gtest/gtest.h>

#include <vector>

namespace ferry::control {
namespace {

// Structural invariants every shape must satisfy.
void CheckShape(const ReduceShape& shape, uint32_t k, uint32_t c) {
  ASSERT_EQ(shape.positions.size(), k);
  const uint32_t root = shape.root();
  EXPECT_EQ(shape.positions[root].parent, kNoPosition);
  EXPECT_EQ(shape.positions[root].depth, 0u);
  uint32_t binary = 0;
  for (uint32_t p = 0; p < k; ++p) {
    const ReduceShape::Position& pos = shape.positions[p];
    if (p != root) {
      ASSERT_NE(pos.parent, kNoPosition) << "position " << p << " has no parent";
      EXPECT_GT(pos.parent, p) << "post-order: a parent comes after its children";
      EXPECT_EQ(pos.depth, shape.positions[pos.parent].depth + 1);
    }
    EXPECT_LE(pos.children.size(), pos.binary ? 2u : 1u) << p;
    if (pos.binary) {
      ++binary;
      EXPECT_GE(pos.children.size(), 1u) << "a binary node without children: " << p;
    }
    for (uint32_t child : pos.children) EXPECT_EQ(shape.positions[child].parent, p);
    // A chain head (a chain position under a binary node or at the root) heads at most c.
    if (!pos.binary && (p == root || shape.positions[pos.parent].binary)) {
      uint32_t length = 0;
      for (uint32_t q = p;; q = shape.positions[q].children[0]) {
        ++length;
        if (shape.positions[q].children.empty()) break;
      }
      EXPECT_LE(length, c) << "chain headed by " << p;
    }
  }
  EXPECT_EQ(binary, shape.binary_nodes);
}

TEST(ReduceShape, InvariantsHoldForManySizes) {
  for (uint32_t k = 1; k <= 70; ++k) {
    for (uint32_t c : {1u, 2u, 3u, 5u, 8u, 16u, k}) {
      SCOPED_TRACE(testing::Message() << "k=" << k << " c=" << c);
      const ReduceShape shape = PlanReduceShape(k, c);
      CheckShape(shape, k, std::min(c, k));
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_TRUE(PlanReduceShape(0, 3).positions.empty());
}

TEST(ReduceShape, LongChainsForLargeObjectsAndABinaryTreeForSmallOnes) {
  const ReduceShape chain = PlanReduceShape(6, 6);
  EXPECT_EQ(chain.binary_nodes, 0u);
  EXPECT_EQ(chain.height(), 5u);
  EXPECT_EQ(chain.max_fan_in(), 1u);
  for (uint32_t p = 0; p + 1 < 6; ++p) EXPECT_EQ(chain.positions[p].parent, p + 1);   // tail first

  const ReduceShape tree = PlanReduceShape(7, 1);   // a complete binary tree
  EXPECT_EQ(tree.binary_nodes, 3u);
  EXPECT_EQ(tree.height(), 2u);
  EXPECT_EQ(tree.max_fan_in(), 2u);
  EXPECT_EQ(tree.positions[6].children, (std::vector<uint32_t>{2, 5}));
  EXPECT_EQ(tree.positions[2].children, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(tree.positions[5].children, (std::vector<uint32_t>{3, 4}));
}

TEST(ReduceShape, BinaryNodesOverChainsInPostOrder) {
  // 10 positions, chains of <= 3: 2 binary nodes over chains of 3, 3 and 2.
  const ReduceShape shape = PlanReduceShape(10, 3);
  EXPECT_EQ(shape.binary_nodes, 2u);
  const std::vector<uint32_t> parents = {1, 2, 5, 4, 5, 9, 7, 8, 9, kNoPosition};
  for (uint32_t p = 0; p < 10; ++p) EXPECT_EQ(shape.positions[p].parent, parents[p]) << p;
  EXPECT_TRUE(shape.positions[5].binary);
  EXPECT_TRUE(shape.positions[9].binary);
  EXPECT_EQ(shape.height(), 4u);   // 0 -> 1 -> 2 -> 5 -> 9
}

TEST(ReduceShape, ChainLengthComesFromSizeOverBandwidthTimesLatency) {
  LinkModel link;   // 1.25 GB/s, 50 us: B*L = 62,500 bytes
  EXPECT_EQ(ReduceChainLength(65536, 100, link), 2u);
  EXPECT_EQ(ReduceChainLength(62500 * 10 - 1000, 100, link), 10u);
  EXPECT_EQ(ReduceChainLength(1 << 30, 100, link), 100u);   // clamped to the inputs
  EXPECT_EQ(ReduceChainLength(100, 100, link), 1u);
  EXPECT_EQ(ReduceChainLength(0, 100, link), 1u);
  EXPECT_EQ(ReduceChainLength(1 << 30, 0, link), 1u);
  link.latency_s = 500e-6;   // a slower hop: shorter chains
  EXPECT_EQ(ReduceChainLength(62500 * 10 - 1000, 100, link), 1u);
}

TEST(ReduceShape, PredictionFavoursWhatTheChainLengthRuleChooses) {
  LinkModel link;
  EXPECT_EQ(PredictReduce(1 << 20, 1, 1, 1 << 16, link), 0.0);
  // A large object over 16 inputs: the one long chain beats a binary tree.
  const uint64_t big = 256u << 20;
  EXPECT_LT(PredictReduce(big, 16, 16, 1 << 20, link), PredictReduce(big, 16, 1, 1 << 20, link));
  // A small object over 256 inputs: the binary tree beats a 256-long chain.
  EXPECT_LT(PredictReduce(4096, 256, 1, 4096, link), PredictReduce(4096, 256, 256, 4096, link));
  // More inputs never take less time.
  EXPECT_LE(PredictReduce(big, 8, 8, 1 << 20, link), PredictReduce(big, 9, 9, 1 << 20, link));

  const ReducePlan plan = PlanReduce(big, 16, link);
  EXPECT_EQ(plan.chain_length, 16u);
  EXPECT_GE(plan.chunk_size, PlanLimits{}.min_chunk);
  EXPECT_LE(plan.chunk_size, PlanLimits{}.max_chunk);
  EXPECT_GE(plan.window, 2u);
  EXPECT_DOUBLE_EQ(plan.predicted_s, PredictReduce(big, 16, 16, plan.chunk_size, link));
  PlanLimits fixed;
  fixed.fixed_chunk = 1 << 18;
  EXPECT_EQ(PlanReduce(big, 16, link, fixed).chunk_size, 1u << 18);
}

}  // namespace
}  // namespace ferry::control
