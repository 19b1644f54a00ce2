// Static groups on a local cluster of real processes (ferry-coord + 8 ferryds, UCX over
// loopback): create / list / delete with their errors; every group collective (allreduce,
// reduce-scatter, allgather, broadcast, reduce) on 2..8 members, checked element by element on
// every member against the scalar reference, for sizes of one element, around a chunk and
// several chunks, every op and dtype for allreduce; rank order by host label; bad input, each
// answered with an error naming it and leaving nothing behind.
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "ferry/placement.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"
#include "tests/integration/reduce_reference.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kNodes = 8;

class GroupTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = kNodes;
    o.arena = "96MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  static std::vector<std::string> Names(int n, int first = 0) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(absl::StrCat("n", first + i));
    return out;
  }
  // Creates group `name` over nodes first..first+n-1 (ranks in that order: one host each).
  static void MakeGroup(const std::string& name, int n, int first = 0) {
    const std::vector<std::string> nodes = Names(n, first);
    absl::StatusOr<GroupInfo> g = cluster_->Connect(0)->CreateGroup(name, nodes);
    ASSERT_TRUE(g.ok()) << g.status();
    ASSERT_EQ(g->members.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) ASSERT_EQ(g->members[r].node, nodes[r]);
  }
  // Input r on node first+r.
  static std::vector<ObjectName> PutInputs(const std::string& prefix, const std::vector<std::vector<uint8_t>>& data,
                                           DType dtype, int first = 0) {
    std::vector<ObjectName> names;
    for (size_t r = 0; r < data.size(); ++r) {
      names.push_back(ObjectName{"default", absl::StrCat(prefix, "/in", r)});
      absl::Status s = cluster_->Connect(first + static_cast<int>(r))->Put(names.back(), data[r], dtype);
      EXPECT_TRUE(s.ok()) << names.back().key << ": " << s;
    }
    return names;
  }
  static std::vector<uint8_t> Read(int node, const ObjectName& name) {
    auto v = cluster_->Connect(node)->Get(name, absl::Seconds(10));
    EXPECT_TRUE(v.ok()) << name.key << " on n" << node << ": " << v.status();
    if (!v.ok()) return {};
    return std::vector<uint8_t>(v->data(), v->data() + v->size());
  }

  static LocalCluster* cluster_;
};
LocalCluster* GroupTest::cluster_ = nullptr;

// An allreduce on group `g` of n members (nodes 0..n-1) over `bytes` of dtype; every member's
// copy checked.
void AllReduceCase(LocalCluster* cluster, const std::string& g, int n, ReduceOp op, DType dtype, size_t bytes,
                   const std::string& prefix) {
  std::vector<std::vector<uint8_t>> data;
  for (int r = 0; r < n; ++r) data.push_back(ReduceInput(op, dtype, bytes / DTypeSize(dtype), 700 * n + r));
  std::vector<ObjectName> in;
  for (int r = 0; r < n; ++r) {
    in.push_back(ObjectName{"default", absl::StrCat(prefix, "/in", r)});
    ASSERT_TRUE(cluster->Connect(r)->Put(in.back(), data[r], dtype).ok()) << prefix;
  }
  const ObjectName out{"default", prefix + "/out"};
  Client::GroupCollectiveOptions o;
  o.op = op;
  o.dtype = dtype;
  o.timeout = absl::Seconds(60);
  auto res = cluster->Connect(n - 1)->GroupCollective(g, GroupOp::kAllReduce, in, out, o);
  ASSERT_TRUE(res.ok()) << prefix << ": " << res.status();
  EXPECT_EQ(res->meta.size, bytes) << prefix;
  EXPECT_EQ(res->nodes.size(), static_cast<size_t>(n)) << prefix;
  const std::vector<uint8_t> want = ReduceReference(op, dtype, data);
  for (int r = 0; r < n; ++r) {
    // Read through the member's own node: its copy, not a pulled one.
    auto v = cluster->Connect(r)->Get(out, absl::Seconds(10));
    ASSERT_TRUE(v.ok()) << prefix << " rank " << r << ": " << v.status();
    EXPECT_EQ(v->meta().dtype, dtype) << prefix;
    EXPECT_EQ(FirstDifference(dtype, want, v->data(), v->size()), "") << prefix << " rank " << r;
  }
}

TEST_F(GroupTest, AllReduceEveryOpAndDtypeOnTwoToEightMembers) {
  for (int n = 2; n <= kNodes; ++n) MakeGroup(absl::StrCat("g", n), n);
  const DType dtypes[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kU8};
  const ReduceOp ops[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax};
  int c = 0;
  for (DType dtype : dtypes) {
    for (ReduceOp op : ops) {
      const int n = 2 + c % 7;
      const size_t w = DTypeSize(dtype);
      // One element, 64 KiB - 1 element, 64 KiB + 1 element (the chunk floor), 1 MiB + 1 element.
      const size_t sizes[] = {w, 65536 - w, 65536 + w, (1 << 20) + w};
      const size_t bytes = sizes[c % 4];
      AllReduceCase(cluster_, absl::StrCat("g", n), n, op, dtype, bytes,
                    absl::StrCat("ar/", DTypeName(dtype), "-", ReduceOpName(op), "-n", n, "-b", bytes));
      ++c;
    }
  }
  // A large one on all eight: many chunks per segment, pipelined around the ring.
  AllReduceCase(cluster_, "g8", 8, ReduceOp::kSum, DType::kF32, 24u << 20, "ar/big");
  absl::StatusOr<std::vector<GroupInfo>> groups = cluster_->Connect(3)->ListGroups();
  ASSERT_TRUE(groups.ok()) << groups.status();
  uint64_t done = 0;
  for (const GroupInfo& g : *groups) done += g.collectives;
  EXPECT_EQ(done, 29u);   // 28 cases and the large one
}

TEST_F(GroupTest, ReduceScatterAllGatherBroadcastAndReduce) {
  MakeGroup("k5", 5, 2);   // nodes n2..n6
  const int n = 5;
  // Reduce-scatter: 5 x 3000 i32 elements; rank r gets the r-th fifth.
  {
    std::vector<std::vector<uint8_t>> data;
    for (int r = 0; r < n; ++r) data.push_back(ReduceInput(ReduceOp::kMax, DType::kI32, 5 * 3000, 40 + r));
    const auto in = PutInputs("rs", data, DType::kI32, 2);
    Client::GroupCollectiveOptions o;
    o.op = ReduceOp::kMax;
    o.dtype = DType::kI32;
    auto res = cluster_->Connect(2)->GroupCollective("k5", GroupOp::kReduceScatter, in, {"default", "rs/out"}, o);
    ASSERT_TRUE(res.ok()) << res.status();
    const std::vector<uint8_t> all = ReduceReference(ReduceOp::kMax, DType::kI32, data);
    const size_t seg = all.size() / n;
    for (int r = 0; r < n; ++r) {
      const std::vector<uint8_t> got = Read(2 + r, ObjectName{"default", "rs/out"});
      const std::vector<uint8_t> want(all.begin() + static_cast<ptrdiff_t>(r * seg),
                                      all.begin() + static_cast<ptrdiff_t>((r + 1) * seg));
      EXPECT_EQ(got, want) << "rank " << r;
    }
  }
  // Allgather: 5 x 100003 bytes (an odd size: one chunk per block) concatenated in rank order.
  for (size_t block : {size_t{7}, size_t{100003}, size_t{1} << 20}) {
    std::vector<std::vector<uint8_t>> data;
    std::vector<uint8_t> want;
    for (int r = 0; r < n; ++r) {
      data.push_back(ReduceInput(ReduceOp::kSum, DType::kU8, block, 90 + r));
      want.insert(want.end(), data.back().begin(), data.back().end());
    }
    const std::string p = absl::StrCat("ag", block);
    const auto in = PutInputs(p, data, DType::kBytes, 2);
    auto res = cluster_->Connect(4)->GroupCollective("k5", GroupOp::kAllGather, in, {"default", p + "/out"});
    ASSERT_TRUE(res.ok()) << res.status();
    EXPECT_EQ(res->meta.size, block * n);
    for (int r = 0; r < n; ++r) EXPECT_EQ(Read(2 + r, ObjectName{"default", p + "/out"}), want) << p << " rank " << r;
  }
  // Broadcast from rank 3 (node n5), with the root's input alone.
  {
    std::vector<uint8_t> bytes = ReduceInput(ReduceOp::kSum, DType::kU8, (3 << 20) + 5, 11);
    ASSERT_TRUE(cluster_->Connect(5)->Put(ObjectName{"default", "bc/in"}, bytes).ok());
    Client::GroupCollectiveOptions o;
    o.root = 3;
    std::vector<ObjectName> in = {{"default", "bc/in"}};
    auto res = cluster_->Connect(2)->GroupCollective("k5", GroupOp::kBroadcast, in, {"default", "bc/out"}, o);
    ASSERT_TRUE(res.ok()) << res.status();
    for (int r = 0; r < n; ++r) EXPECT_EQ(Read(2 + r, ObjectName{"default", "bc/out"}), bytes) << "rank " << r;
  }
  // Reduce to rank 1 (node n3): only it holds the result.
  {
    std::vector<std::vector<uint8_t>> data;
    for (int r = 0; r < n; ++r) data.push_back(ReduceInput(ReduceOp::kSum, DType::kF32, (1 << 19) + 3, 60 + r));
    const auto in = PutInputs("rd", data, DType::kF32, 2);
    Client::GroupCollectiveOptions o;
    o.root = 1;
    auto res = cluster_->Connect(6)->GroupCollective("k5", GroupOp::kReduce, in, {"default", "rd/out"}, o);
    ASSERT_TRUE(res.ok()) << res.status();
    ASSERT_EQ(res->nodes, std::vector<std::string>{"n3"});
    auto v = cluster_->Connect(3)->Get(ObjectName{"default", "rd/out"}, absl::Seconds(10));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(FirstDifference(DType::kF32, ReduceReference(ReduceOp::kSum, DType::kF32, data), v->data(), v->size()), "");
    // Another node reads it by pulling the root's copy.
    auto other = cluster_->Connect(0)->Get(ObjectName{"default", "rd/out"}, absl::Seconds(10));
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(other->size(), v->size());
  }
}

// A static group made from a gang grant (issue 16 item 4): its members are the lease's nodes in
// bundle order, it runs collectives, and it is revoked when the lease is released.
TEST_F(GroupTest, AGroupFromAGangLeaseRunsAndIsRevokedWhenTheLeaseEnds) {
  absl::StatusOr<std::unique_ptr<PlacementClient>> pc =
      PlacementClient::Connect(cluster_->coord_address(), "trainer", absl::Seconds(10));
  ASSERT_TRUE(pc.ok()) << pc.status();
  // Membership reaches placement as nodes register.
  for (int t = 0; t < 200; ++t) {
    absl::StatusOr<std::vector<NodeResources>> nodes = (*pc)->ClusterResources();
    if (nodes.ok() && nodes->size() == static_cast<size_t>(kNodes)) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE((*pc)->SetResource("gang-slot", 1, ResourceSelector::CoverFree({{"host_mem", 1}}, kNodes)).ok());
  PlacementRequest req = AntiAffinity(Bundles(4, {{"gang-slot", 1}}));
  req.timeout = absl::Seconds(10);
  absl::StatusOr<PlacementLease> lease = (*pc)->Acquire(req);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_EQ(lease->bundles.size(), 4u);

  std::unique_ptr<Client> c = cluster_->Connect(0);
  absl::StatusOr<GroupInfo> g = c->CreateGroupFromLease("from-lease", lease->id, "trainer");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->lease_id, lease->id);
  ASSERT_EQ(g->members.size(), 4u);
  std::vector<int> member_index;   // LocalCluster index of each rank's node ("n<i>")
  for (size_t r = 0; r < 4; ++r) {
    EXPECT_EQ(g->members[r].node, lease->bundles[r].node_name) << "rank " << r;
    member_index.push_back(std::stoi(g->members[r].node.substr(1)));
  }
  // An allreduce on it, inputs on the members' own nodes.
  std::vector<std::vector<uint8_t>> data;
  std::vector<ObjectName> in;
  for (int r = 0; r < 4; ++r) {
    data.push_back(ReduceInput(ReduceOp::kSum, DType::kI32, 70000, 900 + r));
    in.push_back(ObjectName{"default", absl::StrCat("lease-group/in", r)});
    ASSERT_TRUE(cluster_->Connect(member_index[r])->Put(in.back(), data[r], DType::kI32).ok());
  }
  Client::GroupCollectiveOptions o;
  o.dtype = DType::kI32;
  const ObjectName out{"default", "lease-group/out"};
  auto res = c->GroupCollective("from-lease", GroupOp::kAllReduce, in, out, o);
  ASSERT_TRUE(res.ok()) << res.status();
  const std::vector<uint8_t> want = ReduceReference(ReduceOp::kSum, DType::kI32, data);
  for (int r = 0; r < 4; ++r) {
    auto v = cluster_->Connect(member_index[r])->Get(out, absl::Seconds(10));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(FirstDifference(DType::kI32, want, v->data(), v->size()), "") << "rank " << r;
  }

  // Bad requests: another holder's lease, an unknown lease, a lease on one node.
  auto other = c->CreateGroupFromLease("stolen", lease->id, "mallory");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied) << other.status();
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("held by 'trainer'"));
  auto unknown = c->CreateGroupFromLease("nolease", 987654321, "trainer");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  absl::StatusOr<PlacementLease> packed = (*pc)->Acquire(Pack(Bundles(2, {{"host_mem", 1}})));
  ASSERT_TRUE(packed.ok()) << packed.status();
  auto lone = c->CreateGroupFromLease("lone", packed->id, "trainer");
  EXPECT_EQ(lone.status().code(), absl::StatusCode::kInvalidArgument) << lone.status();
  EXPECT_THAT(std::string(lone.status().message()), HasSubstr("on 1 node"));
  ASSERT_TRUE((*pc)->Release(packed->id).ok());

  // The lease ends: the group is revoked, saying why, and refuses collectives.
  ASSERT_TRUE((*pc)->Release(lease->id).ok());
  absl::StatusOr<std::vector<GroupInfo>> groups = c->ListGroups();
  ASSERT_TRUE(groups.ok()) << groups.status();
  bool seen = false;
  for (const GroupInfo& gi : *groups) {
    if (gi.name != "from-lease") continue;
    seen = true;
    EXPECT_TRUE(gi.revoked);
    EXPECT_THAT(gi.revoked_why, HasSubstr("released"));
  }
  EXPECT_TRUE(seen);
  auto refused = c->GroupCollective("from-lease", GroupOp::kAllReduce, in, ObjectName{"default", "lease-group/x"}, o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  ASSERT_TRUE(c->DeleteGroup("from-lease").ok());
  ASSERT_TRUE((*pc)->SetResource("gang-slot", 0, ResourceSelector::CoverFree({{"host_mem", 1}}, kNodes)).ok());
}

TEST_F(GroupTest, BadInputIsRefusedAndLeavesNothing) {
  std::unique_ptr<Client> c = cluster_->Connect(1);
  auto code_of = [](const auto& r) { return r.status().code(); };
  // Groups.
  std::vector<std::string> dup = {"n1", "n2", "n1"};
  auto g = c->CreateGroup("bad", dup);
  EXPECT_EQ(code_of(g), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("twice"));
  std::vector<std::string> one = {"n1"};
  EXPECT_EQ(code_of(c->CreateGroup("bad", one)), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> ghost = {"n1", "nobody"};
  g = c->CreateGroup("bad", ghost);
  EXPECT_EQ(code_of(g), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("nobody"));
  std::vector<std::string> two = {"n0", "n1"};
  EXPECT_EQ(code_of(c->CreateGroup("no spaces", two)), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(c->CreateGroup("pair", two).ok());
  EXPECT_EQ(code_of(c->CreateGroup("pair", two)), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code_of(c->DeleteGroup("nothing")), absl::StatusCode::kNotFound);

  // Collectives.
  auto put = [&](int node, const std::string& key, size_t bytes, DType dtype) {
    ASSERT_TRUE(cluster_->Connect(node)->Put({"default", key}, std::vector<uint8_t>(bytes, 1), dtype).ok()) << key;
  };
  put(0, "bad/a", 4096, DType::kF32);
  put(1, "bad/b", 4096, DType::kF32);
  put(1, "bad/short", 2048, DType::kF32);
  put(1, "bad/ints", 4096, DType::kI32);
  put(1, "bad/odd", 12, DType::kF32);
  put(0, "bad/odd0", 12, DType::kF32);
  const ObjectName out{"default", "bad/out"};
  auto run = [&](GroupOp op, std::vector<std::string> keys, Client::GroupCollectiveOptions o = {},
                 const std::string& group = "pair") {
    std::vector<ObjectName> in;
    for (const std::string& k : keys) in.push_back({"default", k});
    return c->GroupCollective(group, op, in, out, o);
  };
  struct Bad {
    const char* what;
    absl::StatusOr<GroupResult> r;
    absl::StatusCode code;
    const char* words;
  };
  Client::GroupCollectiveOptions bad_op;
  bad_op.op = static_cast<ReduceOp>(9);
  Client::GroupCollectiveOptions bytes;
  bytes.dtype = DType::kBytes;
  Client::GroupCollectiveOptions root;
  root.root = 2;
  Client::GroupCollectiveOptions i32;
  i32.dtype = DType::kI32;
  std::vector<Bad> cases;
  cases.push_back({"no group", run(GroupOp::kAllReduce, {"bad/a", "bad/b"}, {}, "absent"), absl::StatusCode::kNotFound, "absent"});
  cases.push_back({"one input", run(GroupOp::kAllReduce, {"bad/a"}), absl::StatusCode::kInvalidArgument, "1 inputs for 2"});
  cases.push_back({"empty", run(GroupOp::kAllReduce, {}), absl::StatusCode::kInvalidArgument, "inputs"});
  cases.push_back({"sizes", run(GroupOp::kAllReduce, {"bad/a", "bad/short"}), absl::StatusCode::kInvalidArgument, "2048"});
  cases.push_back({"dtypes", run(GroupOp::kAllReduce, {"bad/a", "bad/ints"}), absl::StatusCode::kInvalidArgument, "dtype"});
  cases.push_back({"dtype of request", run(GroupOp::kAllReduce, {"bad/a", "bad/b"}, i32), absl::StatusCode::kInvalidArgument, "dtype"});
  cases.push_back({"unknown op", run(GroupOp::kAllReduce, {"bad/a", "bad/b"}, bad_op), absl::StatusCode::kInvalidArgument, "op"});
  cases.push_back({"bytes", run(GroupOp::kAllReduce, {"bad/a", "bad/b"}, bytes), absl::StatusCode::kInvalidArgument, "bytes"});
  cases.push_back({"root", run(GroupOp::kReduce, {"bad/a", "bad/b"}, root), absl::StatusCode::kInvalidArgument, "root"});
  cases.push_back({"duplicate input", run(GroupOp::kAllReduce, {"bad/a", "bad/a"}), absl::StatusCode::kInvalidArgument, "twice"});
  cases.push_back({"input elsewhere", run(GroupOp::kAllReduce, {"bad/b", "bad/a"}), absl::StatusCode::kFailedPrecondition, "not sealed on its member"});
  cases.push_back({"missing input", run(GroupOp::kAllReduce, {"bad/a", "bad/none"}), absl::StatusCode::kFailedPrecondition, "bad/none"});
  cases.push_back({"scatter size", run(GroupOp::kReduceScatter, {"bad/odd0", "bad/odd"}), absl::StatusCode::kInvalidArgument, "multiple of"});
  cases.push_back({"result is input", c->GroupCollective("pair", GroupOp::kAllReduce,
                                                         std::vector<ObjectName>{{"default", "bad/a"}, {"default", "bad/b"}},
                                                         {"default", "bad/a"}),
                   absl::StatusCode::kInvalidArgument, "result"});
  cases.push_back({"result exists", c->GroupCollective("pair", GroupOp::kAllReduce,
                                                       std::vector<ObjectName>{{"default", "bad/a"}, {"default", "bad/b"}},
                                                       {"default", "bad/short"}),
                   absl::StatusCode::kAlreadyExists, "exists"});
  for (const Bad& b : cases) {
    EXPECT_EQ(b.r.status().code(), b.code) << b.what << ": " << b.r.status();
    EXPECT_THAT(std::string(b.r.status().message()), HasSubstr(b.words)) << b.what;
  }
  // Nothing was created, and the inputs are intact.
  EXPECT_EQ(c->Get(out, absl::Milliseconds(200)).status().code(), absl::StatusCode::kDeadlineExceeded);
  auto a = c->Get(ObjectName{"default", "bad/a"}, absl::Seconds(5));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(std::vector<uint8_t>(a->data(), a->data() + a->size()), std::vector<uint8_t>(4096, 1));
  // The group still works after all of that.
  auto ok = run(GroupOp::kAllReduce, {"bad/a", "bad/b"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  auto v = cluster_->Connect(0)->Get(out, absl::Seconds(5));
  ASSERT_TRUE(v.ok()) << v.status();
  float first;
  std::memcpy(&first, v->data(), 4);
  float unit;
  const uint32_t bits = 0x01010101u;
  std::memcpy(&unit, &bits, 4);
  EXPECT_EQ(first, unit + unit);
  auto removed = c->DeleteGroup("pair");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->collectives, 1u);
}

}  // namespace
}  // namespace ferry::testing
