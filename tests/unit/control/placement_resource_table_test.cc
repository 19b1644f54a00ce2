#include "control/placement/resource_table.h"

#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry::control::placement {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ResourceId Id(const ResourceTable& t, const std::string& name) { return t.Find(name).value(); }

class ResourceTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(t_.AddNode(1, {{"rack", "a"}}, {{"gpu", 8}, {"mem", 100}}).ok());
    ASSERT_TRUE(t_.AddNode(2, {{"rack", "a"}}, {{"gpu", 4}}).ok());
    ASSERT_TRUE(t_.AddNode(3, {{"rack", "b"}}, {{"gpu", 2}, {"mem", 50}}).ok());
  }
  ResourceTable t_;
};

TEST_F(ResourceTableTest, AddNodeRecordsCapacitiesAndLabels) {
  const ResourceId gpu = Id(t_, "gpu");
  EXPECT_EQ(t_.Capacity(1, gpu), 8);
  EXPECT_EQ(t_.Free(2, gpu), 4);
  EXPECT_EQ(t_.TotalCapacity(gpu), 14);
  EXPECT_EQ(t_.Holders(gpu).size(), 3u);
  EXPECT_EQ(t_.Holders(Id(t_, "mem")).size(), 2u);
  EXPECT_EQ(*t_.Label(3, "rack"), "b");
  EXPECT_EQ(t_.Label(3, "host"), nullptr);
  ASSERT_NE(t_.LabelValues("rack"), nullptr);
  EXPECT_EQ(t_.LabelValues("rack")->at("a").size(), 2u);
  EXPECT_THAT(t_.NodeIds(), ElementsAre(1, 2, 3));
}

TEST_F(ResourceTableTest, AddNodeRejectsBadInput) {
  EXPECT_EQ(t_.AddNode(0, {}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.AddNode(1, {}, {}).code(), absl::StatusCode::kAlreadyExists);
  absl::Status neg = t_.AddNode(9, {}, {{"gpu", -1}});
  EXPECT_EQ(neg.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(neg.message(), HasSubstr("negative"));
  EXPECT_EQ(t_.AddNode(9, {}, {{"bad name", 1}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.AddNode(9, {}, {{"", 1}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.AddNode(9, {{"", "x"}}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.AddNode(9, {}, {{"gpu", kMaxAmount + 1}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(t_.HasNode(9));
}

TEST_F(ResourceTableTest, AllocateIsAllOrNothingAndReleaseRestores) {
  const ResourceId gpu = Id(t_, "gpu"), mem = Id(t_, "mem");
  absl::Status over = t_.Allocate(1, {{gpu, 4}, {mem, 101}});
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(over.message(), HasSubstr("'mem'"));
  EXPECT_EQ(t_.Free(1, gpu), 8);  // nothing taken
  ASSERT_TRUE(t_.Allocate(1, {{gpu, 4}, {mem, 100}}).ok());
  EXPECT_EQ(t_.Free(1, gpu), 4);
  EXPECT_EQ(t_.Free(1, mem), 0);
  EXPECT_TRUE(t_.Holders(gpu).contains({4, 1}));
  EXPECT_EQ(t_.Release(1, {{gpu, 5}}).code(), absl::StatusCode::kInternal);
  ASSERT_TRUE(t_.Release(1, {{gpu, 4}, {mem, 100}}).ok());
  EXPECT_TRUE(t_.Holders(gpu).contains({8, 1}));
  EXPECT_EQ(t_.Allocate(7, {{gpu, 1}}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(t_.Allocate(2, {{mem, 1}}).code(), absl::StatusCode::kResourceExhausted);  // node 2 has no mem
}

TEST_F(ResourceTableTest, RemoveNodeNeedsNothingAllocated) {
  ASSERT_TRUE(t_.Allocate(3, {{Id(t_, "gpu"), 1}}).ok());
  EXPECT_EQ(t_.RemoveNode(3).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(t_.Release(3, {{Id(t_, "gpu"), 1}}).ok());
  ASSERT_TRUE(t_.RemoveNode(3).ok());
  EXPECT_EQ(t_.RemoveNode(3).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(t_.Holders(Id(t_, "mem")).size(), 1u);
  EXPECT_EQ(t_.TotalCapacity(Id(t_, "gpu")), 12);
  EXPECT_EQ(t_.LabelValues("rack")->count("b"), 0u);
}

TEST_F(ResourceTableTest, SetResourceOnOneNodeCreatesResizesDeletes) {
  auto created = t_.SetResource("slot", 3, NodeSelector::Node(2));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_THAT(*created, ElementsAre(2));
  const ResourceId slot = Id(t_, "slot");
  EXPECT_EQ(t_.Capacity(2, slot), 3);
  ASSERT_TRUE(t_.SetResource("slot", 5, NodeSelector::Node(2)).ok());
  EXPECT_EQ(t_.Capacity(2, slot), 5);
  EXPECT_EQ(t_.TotalCapacity(slot), 5);
  ASSERT_TRUE(t_.SetResource("slot", 0, NodeSelector::Node(2)).ok());
  EXPECT_EQ(t_.Capacity(2, slot), 0);
  EXPECT_TRUE(t_.Holders(slot).empty());
  EXPECT_EQ(t_.TotalCapacity(slot), 0);
}

TEST_F(ResourceTableTest, SetResourceByLabels) {
  auto nodes = t_.SetResource("rack_slot", 1, NodeSelector::WithLabels({{"rack", "a"}}));
  ASSERT_TRUE(nodes.ok());
  EXPECT_THAT(*nodes, ElementsAre(1, 2));
  auto none = t_.SetResource("rack_slot", 1, NodeSelector::WithLabels({{"rack", "zz"}}));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("matches no node"));
  EXPECT_EQ(t_.SetResource("x", 1, NodeSelector::WithLabels({})).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ResourceTableTest, SetResourceOnUpToKNodesCoveringAVector) {
  ASSERT_TRUE(t_.Allocate(1, {{Id(t_, "gpu"), 6}}).ok());  // node 1: 2 gpu free
  auto nodes = t_.SetResource("worker", 1, NodeSelector::CoverFree({{"gpu", 2}}, 2));
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_THAT(*nodes, ElementsAre(1, 2));  // lowest ids among 1, 2, 3
  auto big = t_.SetResource("worker", 1, NodeSelector::CoverFree({{"gpu", 3}, {"mem", 1}}, 5));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kNotFound);  // node 1 has mem but 2 gpu free
  auto cover = t_.SetResource("w2", 1, NodeSelector::CoverFree({{"gpu", 1}, {"mem", 10}}, 5));
  ASSERT_TRUE(cover.ok());
  EXPECT_THAT(*cover, ElementsAre(1, 3));
  EXPECT_EQ(t_.SetResource("w", 1, NodeSelector::CoverFree({{"gpu", 1}}, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.SetResource("w", 1, NodeSelector::CoverFree({}, 1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.SetResource("w", 1, NodeSelector::CoverFree({{"nope", 1}}, 1)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ResourceTableTest, SetResourceRejectsBadInputAndShrinkBelowAllocated) {
  EXPECT_EQ(t_.SetResource("gpu", -1, NodeSelector::Node(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.SetResource("g pu", 1, NodeSelector::Node(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t_.SetResource("gpu", 1, NodeSelector::Node(42)).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(t_.Allocate(1, {{Id(t_, "gpu"), 5}}).ok());
  auto shrink = t_.SetResource("gpu", 4, NodeSelector::WithLabels({{"rack", "a"}}));
  EXPECT_EQ(shrink.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(shrink.status().message(), HasSubstr("node 1 has 5 allocated"));
  EXPECT_EQ(t_.Capacity(2, Id(t_, "gpu")), 4);  // all or nothing: node 2 unchanged too
  EXPECT_EQ(t_.Capacity(1, Id(t_, "gpu")), 8);
  EXPECT_EQ(t_.SetResource("gpu", 0, NodeSelector::Node(1)).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(t_.SetResource("gpu", 5, NodeSelector::Node(1)).ok());
  EXPECT_EQ(t_.Free(1, Id(t_, "gpu")), 0);
}

TEST_F(ResourceTableTest, SnapshotListsCapacityAndAvailability) {
  ASSERT_TRUE(t_.Allocate(3, {{Id(t_, "mem"), 20}}).ok());
  std::vector<NodeResourcesView> snap = t_.Snapshot();
  ASSERT_EQ(snap.size(), 3u);
  EXPECT_EQ(snap[2].node, 3u);
  EXPECT_EQ(snap[2].labels.at("rack"), "b");
  EXPECT_EQ(snap[2].resources.at("mem").capacity, 50);
  EXPECT_EQ(snap[2].resources.at("mem").available, 30);
  EXPECT_EQ(snap[1].resources.count("mem"), 0u);
}

TEST(ParseAmountTest, AcceptsIntegersOnly) {
  EXPECT_EQ(ParseAmount(3.0, "x").value(), 3);
  EXPECT_EQ(ParseAmount(0.0, "x").value(), 0);
  EXPECT_EQ(ParseAmount(2.5, "gpu").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseAmount(2.5, "gpu").status().message(), HasSubstr("not an integer"));
  EXPECT_EQ(ParseAmount(-1, "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAmount(std::nan(""), "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAmount(std::numeric_limits<double>::infinity(), "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAmount(1e300, "x").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::control::placement
