// A static group's member SIGKILLed mid-allreduce (real processes, UCX over loopback, pulls
// capped at 16 MiB/s so the kill lands mid-way): the call fails within the liveness timeout
// with an error naming the dead member, the group is revoked (later collectives on it are
// refused, saying why), no member is left with a result, and an allreduce that allows the
// fallback completes on a dynamic tree over the survivors' inputs, correct element by element.
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

using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr size_t kBytes = 32u << 20;
constexpr int kMembers = 4;
constexpr int kVictim = 2;
constexpr int kLivenessMs = 1500;

ClusterOptions Options() {
  ClusterOptions o;
  o.nodes = kMembers;
  o.arena = "256MiB";
  o.ferryd_flags = {"--max-pull-rate", "16MiB"};
  o.liveness_ms = kLivenessMs;
  return o;
}

uint64_t BytesReceived(LocalCluster& c, int i) {
  auto st = c.Connect(i)->Status();
  return st.ok() ? st->bytes_received : 0;
}

TEST(GroupFaultTest, MemberKilledMidAllReduceRevokesTheGroupAndNamesIt) {
  LocalCluster cluster(Options());
  ASSERT_TRUE(cluster.Start().ok()) << "logs in " << cluster.dir();
  std::vector<std::string> nodes;
  for (int i = 0; i < kMembers; ++i) nodes.push_back(absl::StrCat("n", i));
  ASSERT_TRUE(cluster.Connect(0)->CreateGroup("ring", nodes).ok());
  std::vector<std::vector<uint8_t>> data;
  std::vector<ObjectName> in;
  for (int r = 0; r < kMembers; ++r) {
    data.push_back(ReduceInput(ReduceOp::kSum, DType::kF32, kBytes / 4, 500 + r));
    in.push_back(ObjectName{"default", absl::StrCat("gf/in", r)});
    ASSERT_TRUE(cluster.Connect(r)->Put(in.back(), data.back(), DType::kF32).ok());
  }
  const uint64_t before = BytesReceived(cluster, kVictim);
  const ObjectName out{"default", "gf/out"};
  auto call = std::async(std::launch::async, [&] {
    Client::GroupCollectiveOptions o;
    o.timeout = absl::Seconds(60);
    return cluster.Connect(0)->GroupCollective("ring", GroupOp::kAllReduce, in, out, o);
  });
  // Kill the victim once it has received 4 MiB of the ring's traffic (of 48 MiB).
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (BytesReceived(cluster, kVictim) < before + (4u << 20) && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_LT(absl::Now(), limit) << "the allreduce never got going; logs in " << cluster.dir();
  ASSERT_EQ(call.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "done before the kill";
  const absl::Time killed = absl::Now();
  cluster.Kill(kVictim, SIGKILL);
  absl::StatusOr<GroupResult> r = call.get();
  const absl::Duration took = absl::Now() - killed;
  ASSERT_FALSE(r.ok()) << "an allreduce with a dead member succeeded";
  EXPECT_THAT(r.status().code(), AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kAborted)) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("n2")) << r.status();
  EXPECT_LT(took, absl::Milliseconds(kLivenessMs) + absl::Seconds(3)) << r.status();

  // Revoked, saying why; later collectives are refused.
  std::unique_ptr<Client> c = cluster.Connect(1);
  absl::StatusOr<std::vector<GroupInfo>> groups;
  const absl::Time wait = absl::Now() + absl::Seconds(10);
  bool revoked = false;
  while (!revoked && absl::Now() < wait) {
    groups = c->ListGroups();
    ASSERT_TRUE(groups.ok()) << groups.status();
    revoked = groups->size() == 1 && (*groups)[0].revoked;
    if (!revoked) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(revoked);
  EXPECT_THAT((*groups)[0].revoked_why, HasSubstr("n2"));
  auto again = c->GroupCollective("ring", GroupOp::kAllReduce, in, ObjectName{"default", "gf/again"});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("revoked"));

  // No survivor holds a result (a failed collective leaves none anywhere).
  for (int i : {0, 1, 3}) {
    auto v = cluster.Connect(i)->Get(out, absl::Milliseconds(300));
    EXPECT_FALSE(v.ok()) << "n" << i << " has a result of the failed allreduce";
  }

  // With the fallback allowed, the survivors' inputs are reduced on a dynamic tree.
  Client::GroupCollectiveOptions o;
  o.dynamic_fallback = true;
  o.timeout = absl::Seconds(60);
  auto fell = c->GroupCollective("ring", GroupOp::kAllReduce, in, ObjectName{"default", "gf/dyn"}, o);
  ASSERT_TRUE(fell.ok()) << fell.status();
  EXPECT_TRUE(fell->dynamic);
  EXPECT_EQ(fell->used, (std::vector<uint32_t>{0, 1, 3}));
  std::vector<std::vector<uint8_t>> survivors = {data[0], data[1], data[3]};
  const std::vector<uint8_t> want = ReduceReference(ReduceOp::kSum, DType::kF32, survivors);
  for (int i : {0, 1, 3}) {
    auto v = cluster.Connect(i)->Get(ObjectName{"default", "gf/dyn"}, absl::Seconds(20));
    ASSERT_TRUE(v.ok()) << "n" << i << ": " << v.status();
    EXPECT_EQ(FirstDifference(DType::kF32, want, v->data(), v->size()), "") << "n" << i;
  }
}

}  // namespace
}  // namespace ferry::testing
