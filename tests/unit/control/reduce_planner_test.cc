// ReducePlanner: ready-order filling, k < n, failures with and without spares, recompute
// orders, completion and give-up reports, bad input (control/planner/reduce_planner.h).
#include "control/planner/reduce_planner.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace ferry::control {
namespace {

using Step = ReducePlanner::Step;

std::unique_ptr<ReducePlanner> Make(std::vector<NodeId> inputs, uint32_t k, uint32_t chain) {
  absl::StatusOr<std::unique_ptr<ReducePlanner>> p = ReducePlanner::Create(std::move(inputs), k, chain);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

std::vector<Step> Ready(ReducePlanner& p, NodeId node) {
  absl::StatusOr<std::vector<Step>> steps = p.InputReady(node);
  EXPECT_TRUE(steps.ok()) << steps.status();
  return steps.value_or(std::vector<Step>{});
}

std::vector<Step> Failed(ReducePlanner& p, NodeId node) {
  absl::StatusOr<std::vector<Step>> steps = p.InputFailed(node);
  EXPECT_TRUE(steps.ok()) << steps.status();
  return steps.value_or(std::vector<Step>{});
}

TEST(ReducePlanner, BadInputIsRefused) {
  EXPECT_EQ(ReducePlanner::Create({}, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReducePlanner::Create({1, 2}, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status too_many = ReducePlanner::Create({1, 2}, 3, 1).status();
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.message().find("num_objects 3"), std::string::npos) << too_many;
  absl::Status dup = ReducePlanner::Create({1, 2, 1}, 2, 1).status();
  EXPECT_EQ(dup.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.message().find("node 1 is listed twice"), std::string::npos) << dup;
  EXPECT_EQ(ReducePlanner::Create({1, 0}, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);

  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 3, 1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->InputReady(9).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(p->InputFailed(9).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(p->PositionDone(9).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(p->PositionDone(1).code(), absl::StatusCode::kFailedPrecondition);   // not placed
  Ready(*p, 1);
  EXPECT_EQ(p->InputReady(1).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(ReducePlanner, PositionsFillInReadyOrder) {
  // 7 inputs, chain length 1: a complete binary tree, positions 0,1 -> 2; 3,4 -> 5; 2,5 -> 6.
  std::unique_ptr<ReducePlanner> p = Make({10, 20, 30, 40, 50, 60, 70}, 7, 1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Ready(*p, 50), (std::vector<Step>{{50, 0, 0, {}, false}}));
  EXPECT_EQ(Ready(*p, 10), (std::vector<Step>{{10, 1, 0, {}, false}}));
  // The third ready input heads the first subtree: it pulls from the first two.
  EXPECT_EQ(Ready(*p, 70), (std::vector<Step>{{70, 2, 0, {50, 10}, false}}));
  // That subtree can complete before any later input is ready.
  EXPECT_TRUE(p->PositionDone(70).ok());
  EXPECT_EQ(Ready(*p, 30), (std::vector<Step>{{30, 3, 0, {}, false}}));
  Ready(*p, 40);
  Ready(*p, 60);
  EXPECT_EQ(p->NodeAt(5), 60u);
  EXPECT_TRUE(p->PositionDone(60).ok());
  EXPECT_FALSE(p->Done());
  EXPECT_EQ(Ready(*p, 20), (std::vector<Step>{{20, 6, 0, {70, 60}, false}}));
  EXPECT_EQ(p->root_node(), 20u);
  EXPECT_TRUE(p->PositionDone(20).ok());
  EXPECT_TRUE(p->Done());
  EXPECT_EQ(p->Used(), (std::vector<NodeId>{50, 10, 70, 30, 40, 60, 20}));
  EXPECT_EQ(p->vacant(), 0u);
}

TEST(ReducePlanner, APositionWithAVacantChildCannotBeDone) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 3, 3);   // a chain 0 -> 1 -> 2
  ASSERT_NE(p, nullptr);
  Ready(*p, 1);
  Ready(*p, 2);
  Ready(*p, 3);
  Failed(*p, 1);   // position 0 vacant, no spare
  absl::Status st = p->PositionDone(2);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("child position 0 is vacant"), std::string::npos) << st;
}

TEST(ReducePlanner, TheFirstKReadyAreUsedAndLaterOnesAreSpares) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3, 4, 5}, 3, 3);
  ASSERT_NE(p, nullptr);
  Ready(*p, 4);
  Ready(*p, 2);
  EXPECT_EQ(Ready(*p, 5), (std::vector<Step>{{5, 2, 0, {2}, false}}));
  EXPECT_TRUE(Ready(*p, 1).empty());   // a spare: nothing to send
  EXPECT_TRUE(Ready(*p, 3).empty());
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{1, 3}));
  EXPECT_FALSE(p->PositionOf(1).has_value());
  for (NodeId n : {4, 2, 5}) EXPECT_TRUE(p->PositionDone(n).ok());
  EXPECT_TRUE(p->Done());
  EXPECT_EQ(p->Used(), (std::vector<NodeId>{4, 2, 5}));
}

TEST(ReducePlanner, AFailedInputWaitsForARecreatedOneWithoutSpares) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 3, 3);   // chain: 0 (tail) -> 1 -> 2 (root)
  ASSERT_NE(p, nullptr);
  Ready(*p, 1);
  Ready(*p, 2);
  Ready(*p, 3);
  ASSERT_TRUE(p->PositionDone(1).ok());   // the tail is complete, its parent is not
  // The tail fails before its parent is done: every ancestor recomputes, the slot waits.
  EXPECT_EQ(Failed(*p, 1), (std::vector<Step>{{2, 1, 3, {0}, true}, {3, 2, 0, {2}, true}}));
  EXPECT_EQ(p->vacant(), 1u);
  EXPECT_EQ(p->NodeAt(0), 0u);
  EXPECT_TRUE(Failed(*p, 1).empty());   // a repeated failure is a no-op
  // The input is re-created on the same node: it takes the slot, its parent pulls from it.
  EXPECT_EQ(Ready(*p, 1), (std::vector<Step>{{1, 0, 2, {}, false}, {2, 1, 3, {1}, false}}));
  for (NodeId n : {1, 2, 3}) EXPECT_TRUE(p->PositionDone(n).ok());
  EXPECT_TRUE(p->Done());
}

TEST(ReducePlanner, ASpareTakesAFailedInputsSlot) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3, 4, 5, 6, 7, 8}, 7, 1);   // binary tree
  ASSERT_NE(p, nullptr);
  for (NodeId n : {1, 2, 3, 4, 5, 6, 7, 8}) Ready(*p, n);   // 8 is the spare
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{8}));
  // Node 4 (position 3, under 6 at position 5, under the root 7) fails: 8 takes position 3;
  // positions 5 and 6 recompute; 5's children now name 8.
  EXPECT_EQ(Failed(*p, 4), (std::vector<Step>{{8, 3, 6, {}, false}, {6, 5, 7, {8, 5}, true}, {7, 6, 0, {3, 6}, true}}));
  EXPECT_TRUE(p->spares().empty());
  for (NodeId n : {1, 2, 3, 8, 5, 6, 7}) EXPECT_TRUE(p->PositionDone(n).ok());
  EXPECT_TRUE(p->Done());
  EXPECT_EQ(p->Used(), (std::vector<NodeId>{1, 2, 3, 8, 5, 6, 7}));
  EXPECT_EQ(p->GiveUp().lost, (std::vector<NodeId>{4}));
}

TEST(ReducePlanner, AFailedInputAlreadyConsumedByADoneParentStaysInTheResult) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3, 4}, 3, 3);   // chain 0 -> 1 -> 2, one spare
  ASSERT_NE(p, nullptr);
  for (NodeId n : {1, 2, 3, 4}) Ready(*p, n);
  ASSERT_TRUE(p->PositionDone(1).ok());
  ASSERT_TRUE(p->PositionDone(2).ok());   // 2 holds the complete partial sum of 1 and 2
  EXPECT_TRUE(Failed(*p, 1).empty());     // nothing to re-plan
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{4}));
  EXPECT_TRUE(Ready(*p, 1).empty());      // a re-created input changes nothing: it is in the result
  EXPECT_EQ(p->Used(), (std::vector<NodeId>{1, 2, 3}));
  // Now 2 fails before the root is done: its partial sum is gone, and with it 1's data, so both
  // positions are re-planned (the spare takes the lower one), and the root recomputes.
  EXPECT_EQ(Failed(*p, 2), (std::vector<Step>{{4, 0, 0, {}, false}, {3, 2, 0, {0}, true}}));
  EXPECT_EQ(p->vacant(), 1u);
  EXPECT_EQ(p->NodeAt(1), 0u);
  const ReducePlanner::Outcome out = p->GiveUp();
  EXPECT_EQ(out.used, (std::vector<NodeId>{4, 3}));
  EXPECT_EQ(out.lost, (std::vector<NodeId>{1, 2}));
  EXPECT_TRUE(out.not_ready.empty());
  // 1's input is re-created after all: it fills position 1 between 4 and 3.
  // (The root was already told to recompute; now its child is named.)
  EXPECT_EQ(Ready(*p, 1), (std::vector<Step>{{1, 1, 3, {4}, false}, {3, 2, 0, {1}, false}}));
}

TEST(ReducePlanner, TheRootFailingAfterItIsDoneIsReplanned) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3, 4}, 3, 1);   // binary: 0, 1 -> 2
  ASSERT_NE(p, nullptr);
  for (NodeId n : {1, 2, 3, 4}) Ready(*p, n);
  for (NodeId n : {1, 2, 3}) ASSERT_TRUE(p->PositionDone(n).ok());
  ASSERT_TRUE(p->Done());
  EXPECT_EQ(Failed(*p, 3), (std::vector<Step>{{4, 2, 0, {1, 2}, false}}));
  EXPECT_FALSE(p->Done());
  EXPECT_EQ(p->root_node(), 4u);
}

TEST(ReducePlanner, GiveUpReportsLostAndNotReadyInputs) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3, 4}, 4, 4);
  ASSERT_NE(p, nullptr);
  Ready(*p, 2);
  Failed(*p, 3);   // failed before it was ever ready
  Ready(*p, 4);
  Failed(*p, 2);   // position 0 vacant; 4 recomputes
  const ReducePlanner::Outcome out = p->GiveUp();
  EXPECT_EQ(out.used, (std::vector<NodeId>{4}));
  EXPECT_EQ(out.lost, (std::vector<NodeId>{2, 3}));
  EXPECT_EQ(out.not_ready, (std::vector<NodeId>{1}));
  EXPECT_EQ(p->vacant(), 3u);
}

TEST(ReducePlanner, AFailedSpareIsDropped) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 1, 1);   // one position: the root
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Ready(*p, 3), (std::vector<Step>{{3, 0, 0, {}, false}}));
  Ready(*p, 1);
  Ready(*p, 2);
  EXPECT_TRUE(Failed(*p, 1).empty());
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{2}));
  EXPECT_EQ(Failed(*p, 3), (std::vector<Step>{{2, 0, 0, {}, false}}));
  EXPECT_TRUE(p->PositionDone(2).ok());
  EXPECT_TRUE(p->Done());
  EXPECT_EQ(p->Used(), (std::vector<NodeId>{2}));
}

// ---- a chosen root (ReserveRoot) ------------------------------------------------------------

std::vector<Step> ReadyRoot(ReducePlanner& p, NodeId node) {
  absl::StatusOr<std::vector<Step>> steps = p.InputReady(node, /*root=*/true);
  EXPECT_TRUE(steps.ok()) << steps.status();
  return steps.value_or(std::vector<Step>{});
}

TEST(ReducePlanner, AChosenRootTakesTheRootWhenReadyAndTheOthersFillTheRest) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 3, 3);   // chain: 0 (tail) -> 1 -> 2 (root)
  ASSERT_NE(p, nullptr);
  p->ReserveRoot();
  EXPECT_TRUE(p->root_reserved());
  // The chosen root is ready first: it takes the root at once, with its child still vacant.
  EXPECT_EQ(ReadyRoot(*p, 3), (std::vector<Step>{{3, 2, 0, {0}, false}}));
  EXPECT_EQ(Ready(*p, 1), (std::vector<Step>{{1, 0, 0, {}, false}}));
  // The second input heads the chain under the root; the root's children change.
  EXPECT_EQ(Ready(*p, 2), (std::vector<Step>{{2, 1, 3, {1}, false}, {3, 2, 0, {2}, false}}));
  for (NodeId n : {1, 2, 3}) EXPECT_TRUE(p->PositionDone(n).ok());
  EXPECT_TRUE(p->Done());
  EXPECT_EQ(p->root_node(), 3u);
}

TEST(ReducePlanner, ALateChosenRootIsAlwaysUsedAndTheOthersDoNotTakeItsPlace) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3, 4}, 2, 2);   // k = 2: a chain of two
  ASSERT_NE(p, nullptr);
  p->ReserveRoot();
  Ready(*p, 1);                        // position 0
  EXPECT_TRUE(Ready(*p, 2).empty());   // the root is held: a spare
  EXPECT_TRUE(Ready(*p, 4).empty());
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{2, 4}));
  EXPECT_EQ(p->NodeAt(1), 0u);
  EXPECT_EQ(ReadyRoot(*p, 3), (std::vector<Step>{{3, 1, 0, {1}, false}}));
  EXPECT_EQ(p->Used(), (std::vector<NodeId>{1, 3}));
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{2, 4}));
}

TEST(ReducePlanner, AFailedChosenRootLetsASpareTakeTheRoot) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 2, 2);
  ASSERT_NE(p, nullptr);
  p->ReserveRoot();
  Ready(*p, 1);
  EXPECT_EQ(ReadyRoot(*p, 3), (std::vector<Step>{{3, 1, 0, {1}, false}}));
  EXPECT_TRUE(Ready(*p, 2).empty());   // spare
  // The root's input dies before the root is done: the reservation lapses, the spare takes it.
  EXPECT_EQ(Failed(*p, 3), (std::vector<Step>{{2, 1, 0, {1}, false}}));
  EXPECT_FALSE(p->root_reserved());
  for (NodeId n : {1, 2}) EXPECT_TRUE(p->PositionDone(n).ok());
  EXPECT_TRUE(p->Done());
  EXPECT_EQ(p->root_node(), 2u);
}

TEST(ReducePlanner, ReleasingTheRootBeforeItsInputIsReadyFillsItFromTheSpares) {
  std::unique_ptr<ReducePlanner> p = Make({1, 2, 3}, 2, 2);
  ASSERT_NE(p, nullptr);
  p->ReserveRoot();
  Ready(*p, 1);
  EXPECT_TRUE(Ready(*p, 2).empty());
  EXPECT_EQ(p->ReleaseRoot(), (std::vector<Step>{{2, 1, 0, {1}, false}}));
  EXPECT_TRUE(p->ReleaseRoot().empty());   // once
  // The chosen root's input, ready after all, is an ordinary spare now.
  EXPECT_TRUE(ReadyRoot(*p, 3).empty());
  EXPECT_EQ(p->spares(), (std::vector<NodeId>{3}));
}

}  // namespace
}  // namespace ferry::control
