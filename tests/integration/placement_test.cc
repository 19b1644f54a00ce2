// The Placement service end to end: a real ferry-coord, real ferryd nodes (their membership
// feeds placement), and the SDK's PlacementClient. Gang atomicity across nodes, immediate
// failure of what can never be granted, a waiter granted by a release, deadlines, holders
// checked, a SIGKILLed node's leases released, and bad inputs refused with clear messages.
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>

#include <future>
#include <map>
#include <set>
#include <memory>
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

class PlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.nodes = 3;
    options.arena = "64MiB";
    cluster_ = std::make_unique<LocalCluster>(options);
    ASSERT_TRUE(cluster_->Start().ok());
    a_ = Client("alice");
    b_ = Client("bob");
    // Membership reaches placement when each node registers; wait until all three are in.
    for (int t = 0; t < 200 && NodeIds().size() < 3; ++t) absl::SleepFor(absl::Milliseconds(50));
    ids_ = NodeIds();
    ASSERT_EQ(ids_.size(), 3u);
  }

  std::unique_ptr<PlacementClient> Client(const std::string& holder) {
    absl::StatusOr<std::unique_ptr<PlacementClient>> c =
        PlacementClient::Connect(cluster_->coord_address(), holder, absl::Seconds(10));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // Node name ("n0") -> id, from ClusterResources.
  std::map<std::string, uint64_t> NodeIds() {
    std::map<std::string, uint64_t> out;
    absl::StatusOr<std::vector<NodeResources>> nodes = a_->ClusterResources();
    if (nodes.ok()) {
      for (const NodeResources& n : *nodes) out[n.name] = n.node_id;
    }
    return out;
  }

  // Available amount of `resource` on node `name`.
  double Available(const std::string& name, const std::string& resource) {
    absl::StatusOr<std::vector<NodeResources>> nodes = a_->ClusterResources();
    if (!nodes.ok()) return -1;
    for (const NodeResources& n : *nodes) {
      auto it = n.resources.find(resource);
      if (n.name == name) return it == n.resources.end() ? -1 : it->second.available;
    }
    return -1;
  }

  void Create(const std::string& resource, double capacity, const std::string& node) {
    absl::StatusOr<std::vector<uint64_t>> set =
        a_->SetResource(resource, capacity, ResourceSelector::Node(ids_.at(node)));
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_EQ(*set, std::vector<uint64_t>{ids_.at(node)});
  }

  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<PlacementClient> a_, b_;
  std::map<std::string, uint64_t> ids_;
};

TEST_F(PlacementTest, NodesArriveWithTheirAdvertisedHostMemory) {
  absl::StatusOr<std::vector<NodeResources>> nodes = a_->ClusterResources();
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  for (const NodeResources& n : *nodes) {
    ASSERT_TRUE(n.resources.contains("host_mem")) << n.name;
    EXPECT_EQ(n.resources.at("host_mem").capacity, 64.0 * 1024 * 1024);
  }
}

TEST_F(PlacementTest, GangAcrossNodesIsAllOrNothing) {
  for (const char* n : {"n0", "n1", "n2"}) Create("slot", 1, n);
  Create("only0", 1, "n0");
  // Alice takes n0's slot; a 3-node gang of slots then cannot be granted and takes nothing.
  absl::StatusOr<PlacementLease> held = a_->Acquire(Gang({{{"slot", 1}, {"only0", 1}}}));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->bundles.at(0).node_name, "n0");
  PlacementRequest gang = AntiAffinity(Bundles(3, {{"slot", 1}}));
  gang.timeout = absl::Milliseconds(400);
  absl::StatusOr<PlacementLease> denied = b_->Acquire(gang);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kDeadlineExceeded) << denied.status();
  EXPECT_EQ(Available("n1", "slot"), 1);
  EXPECT_EQ(Available("n2", "slot"), 1);
  // Once n0's slot is back the gang gets one slot on every node.
  ASSERT_TRUE(a_->Release(held->id).ok());
  gang.timeout = absl::Seconds(10);
  absl::StatusOr<PlacementLease> granted = b_->Acquire(gang);
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_EQ(granted->bundles.size(), 3u);
  std::set<uint64_t> nodes;
  for (const LeasedBundle& bundle : granted->bundles) nodes.insert(bundle.node_id);
  EXPECT_EQ(nodes.size(), 3u);
  for (const char* n : {"n0", "n1", "n2"}) EXPECT_EQ(Available(n, "slot"), 0) << n;
  EXPECT_EQ(RankOrderByNode(*granted).size(), 3u);
}

TEST_F(PlacementTest, NeverSatisfiableFailsAtOnceWithTheReason) {
  const absl::Time start = absl::Now();
  PlacementRequest r = Gang({{{"host_mem", 1024.0 * 1024 * 1024}}});
  r.timeout = absl::Seconds(30);
  absl::StatusOr<PlacementLease> lease = a_->Acquire(r);
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kFailedPrecondition) << lease.status();
  EXPECT_THAT(lease.status().message(), HasSubstr("host_mem"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // More different nodes than there are.
  absl::StatusOr<PlacementLease> four = a_->Acquire(AntiAffinity(Bundles(4, {{"host_mem", 1}})));
  EXPECT_EQ(four.status().code(), absl::StatusCode::kFailedPrecondition) << four.status();
  absl::StatusOr<PlacementLease> unknown = a_->Acquire(Gang({{{"no-such-resource", 1}}}));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  EXPECT_THAT(unknown.status().message(), HasSubstr("no-such-resource"));
}

TEST_F(PlacementTest, WaiterIsGrantedAfterReleaseAndDeadlinesEndWaits) {
  Create("tok", 1, "n1");
  absl::StatusOr<PlacementLease> held = a_->Acquire(Gang({{{"tok", 1}}}));
  ASSERT_TRUE(held.ok()) << held.status();
  // Deadline: bob waits 300 ms and is told DEADLINE_EXCEEDED.
  PlacementRequest r = Gang({{{"tok", 1}}});
  r.timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::StatusOr<PlacementLease> late = b_->Acquire(r);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  // Release grants the waiter.
  r.timeout = absl::Seconds(30);
  std::future<absl::StatusOr<PlacementLease>> waiting =
      std::async(std::launch::async, [&] { return b_->Acquire(r); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  ASSERT_TRUE(a_->Release(held->id).ok());
  absl::StatusOr<PlacementLease> granted = waiting.get();
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->holder, "bob");
  EXPECT_EQ(granted->bundles.at(0).node_name, "n1");
  EXPECT_GT(granted->waited, absl::ZeroDuration());
  absl::StatusOr<std::vector<PlacementLease>> mine = b_->ListLeases();
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(mine->at(0).id, granted->id);
}

TEST_F(PlacementTest, SomeoneElsesLeaseIsRefused) {
  Create("tok", 1, "n2");
  absl::StatusOr<PlacementLease> held = a_->Acquire(Gang({{{"tok", 1}}}));
  ASSERT_TRUE(held.ok()) << held.status();
  absl::Status s = b_->Release(held->id);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_EQ(b_->Renew(held->id).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Available("n2", "tok"), 0);  // still alice's
  absl::StatusOr<absl::Time> renewed = a_->Renew(held->id);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_GT(*renewed, absl::Now());
  ASSERT_TRUE(a_->Release(held->id).ok());
  EXPECT_EQ(a_->Release(held->id).code(), absl::StatusCode::kNotFound);
}

TEST_F(PlacementTest, KilledNodeReleasesItsLeases) {
  Create("tok", 1, "n1");
  absl::StatusOr<PlacementLease> held = a_->Acquire(Gang({{{"tok", 1}}, {{"host_mem", 1}}}));
  ASSERT_TRUE(held.ok()) << held.status();
  cluster_->Kill(1, SIGKILL);
  // The coordinator declares n1 dead after its liveness timeout; the lease goes with it.
  absl::Status renew;
  for (int t = 0; t < 400; ++t) {
    renew = a_->Renew(held->id).status();
    if (!renew.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(renew.code(), absl::StatusCode::kNotFound) << renew;
  EXPECT_THAT(renew.message(), HasSubstr("n1"));
  EXPECT_THAT(renew.message(), HasSubstr("died"));
  EXPECT_FALSE(NodeIds().contains("n1"));
  // The other bundle's host_mem is back on its node.
  absl::StatusOr<std::vector<PlacementLease>> all = a_->ListLeases(/*all=*/true);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST_F(PlacementTest, BadInputsAreRefusedNamingTheProblem) {
  PlacementRequest empty;
  absl::StatusOr<PlacementLease> r = a_->Acquire(empty);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  r = a_->Acquire(Gang({{{"host_mem", 0.5}}}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("host_mem"));
  r = a_->Acquire(Gang({{{"host_mem", -1}}}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  r = a_->Acquire(Affinity(Bundles(2, {{"host_mem", 1}}), ""));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  PlacementRequest negative = Gang({{{"host_mem", 1}}});
  negative.timeout = absl::Milliseconds(-5);
  EXPECT_EQ(a_->Acquire(negative).status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::vector<uint64_t>> set = a_->SetResource("bad name!", 1, ResourceSelector::Node(ids_["n0"]));
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument) << set.status();
  set = a_->SetResource("ok", 1, ResourceSelector::Node(12345));
  EXPECT_EQ(set.status().code(), absl::StatusCode::kNotFound) << set.status();
  set = a_->SetResource("ok", 1.5, ResourceSelector::Node(ids_["n0"]));
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument) << set.status();
  set = a_->SetResource("ok", 1, ResourceSelector::WithLabels({}));
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument) << set.status();

  EXPECT_EQ(a_->Release(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a_->Release(987654).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PlacementClient::Connect(cluster_->coord_address(), "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PlacementTest, DataLocalityLandsOnTheGivenNodes) {
  absl::StatusOr<PlacementRequest> r =
      DataLocality(*a_, Gang(Bundles(2, {{"host_mem", 1}})), {ids_["n2"]}, "shard-7", 2);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<PlacementLease> lease = a_->Acquire(*r);
  ASSERT_TRUE(lease.ok()) << lease.status();
  for (const LeasedBundle& b : lease->bundles) EXPECT_EQ(b.node_name, "n2");
}

struct CliRun {
  int code = -1;
  std::string out;
};

// Runs `ferry ARGS` (stdout and stderr together).
CliRun Ferry(const std::string& args) {
  CliRun run;
  FILE* p = popen((LocalCluster::Bin("ferry") + " " + args + " 2>&1").c_str(), "r");
  if (p == nullptr) return run;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) run.out.append(buf, n);
  const int status = pclose(p);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST_F(PlacementTest, CommandLineVerbs) {
  const std::string coord = " --coord " + cluster_->coord_address();
  CliRun res = Ferry("resources" + coord);
  EXPECT_EQ(res.code, 0) << res.out;
  EXPECT_THAT(res.out, HasSubstr("host_mem"));
  EXPECT_THAT(res.out, HasSubstr("n2"));
  CliRun acq = Ferry("acquire host_mem=1024 host_mem=1024 --constraint different-nodes --holder cli --json" + coord);
  ASSERT_EQ(acq.code, 0) << acq.out;
  absl::StatusOr<std::vector<PlacementLease>> leases = a_->ListLeases(/*all=*/true);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ(leases->at(0).holder, "cli");
  EXPECT_NE(leases->at(0).bundles.at(0).node_id, leases->at(0).bundles.at(1).node_id);
  const std::string id = absl::StrCat(leases->at(0).id);
  CliRun list = Ferry("leases" + coord);
  EXPECT_EQ(list.code, 0) << list.out;
  EXPECT_THAT(list.out, HasSubstr("cli"));
  CliRun other = Ferry("release " + id + " --holder mallory" + coord);
  EXPECT_EQ(other.code, 1) << other.out;
  EXPECT_THAT(other.out, HasSubstr("ferry: "));
  CliRun rel = Ferry("release " + id + " --holder cli" + coord);
  EXPECT_EQ(rel.code, 0) << rel.out;
  EXPECT_EQ(Ferry("acquire host_mem=x" + coord).code, 2);
  EXPECT_EQ(Ferry("acquire host_mem=1 --constraint sideways" + coord).code, 2);
  EXPECT_EQ(Ferry("resources --coord 127.0.0.1:1").code, 3);
}

TEST_F(PlacementTest, CommandLineBatchAndLostVerbs) {
  const std::string coord = " --coord " + cluster_->coord_address();
  CliRun acq = Ferry("acquire host_mem=1 --count 3 --holder cli --json" + coord);
  ASSERT_EQ(acq.code, 0) << acq.out;
  absl::StatusOr<std::vector<PlacementLease>> leases = a_->ListLeases(/*all=*/true);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 3u);
  EXPECT_NE(leases->at(0).incarnation, 0u);
  std::string ids;
  for (const PlacementLease& l : *leases) absl::StrAppend(&ids, " ", l.id);
  CliRun rel = Ferry("release" + ids + " 999999 --holder cli" + coord);
  EXPECT_EQ(rel.code, 1) << rel.out;  // 999999 is unknown; the other three are released
  EXPECT_THAT(rel.out, HasSubstr("lease 999999"));
  leases = a_->ListLeases(/*all=*/true);
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty());
  EXPECT_EQ(Ferry("acquire host_mem=1 --count 0" + coord).code, 2);
  EXPECT_EQ(Ferry("acquire host_mem=1 --count 2000" + coord).code, 2);
  EXPECT_EQ(Ferry("lost --for 0s" + coord).code, 2);
  EXPECT_EQ(Ferry("lost --for soon" + coord).code, 2);
  // A lease with a short ttl, never renewed: `ferry lost` prints it when it expires.
  ASSERT_EQ(Ferry("acquire host_mem=1 --ttl 1500ms --holder cli2" + coord).code, 0);
  CliRun lost = Ferry("lost --holder cli2 --for 4s" + coord);
  EXPECT_EQ(lost.code, 0) << lost.out;
  EXPECT_THAT(lost.out, HasSubstr("lost lease"));
  EXPECT_THAT(lost.out, HasSubstr("expired"));
}

}  // namespace
}  // namespace ferry::testing
