// Reduce and AllReduce on a local cluster of real processes (ferry-coord + 8 ferryds, UCX over
// loopback, 64 KiB chunks): every op x dtype on 2..8 nodes against the scalar reference, element
// by element; sizes of one element, a chunk less one element (one byte for u8), a chunk plus one
// element, and several chunks; a subset reduce whose other inputs come late; AllReduce leaving
// the result on every participant; bad input, each answered with an error naming it; ferryd
// --reduce-scratch at its smallest (one set per node).
#include <fstream>
#include <future>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"
#include "tests/integration/reduce_reference.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr int kNodes = 8;
constexpr size_t kChunk = 64 * 1024;

class ReduceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = kNodes;
    o.arena = "64MiB";
    o.coord_flags = {"--fixed-chunk", "64KiB"};
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Puts input i (of `inputs`) on node i; returns its name.
  static ObjectName PutInput(const std::string& prefix, int i, const std::vector<uint8_t>& bytes, DType dtype) {
    ObjectName name{"default", absl::StrCat(prefix, "/in", i)};
    absl::Status s = cluster_->Connect(i)->Put(name, bytes, dtype);
    EXPECT_TRUE(s.ok()) << name.key << ": " << s;
    return name;
  }
  // The result read on node `reader`, compared with the reference over `inputs`.
  static void ExpectResult(int reader, const ObjectName& result, ReduceOp op, DType dtype,
                           const std::vector<std::vector<uint8_t>>& inputs, const std::string& what) {
    auto v = cluster_->Connect(reader)->Get(result, absl::Seconds(10));
    ASSERT_TRUE(v.ok()) << what << ": " << v.status();
    EXPECT_EQ(v->meta().dtype, dtype) << what;
    EXPECT_EQ(FirstDifference(dtype, ReduceReference(op, dtype, inputs), v->data(), v->size()), "") << what;
  }

  // `n` inputs' data (seeds seed..seed+n-1) and names "<prefix>/in<i>", not put yet.
  // Puts input i of `data` on node i, for each i of `order`, one every `gap` (later inputs of a
  // reduce already running).
  static void PutOneByOne(const std::string& prefix, std::initializer_list<int> order,
                          const std::vector<std::vector<uint8_t>>& data, DType dtype,
                          std::chrono::milliseconds gap) {
    for (int i : order) {
      std::this_thread::sleep_for(gap);
      PutInput(prefix, i, data[i], dtype);
    }
  }
  struct Inputs {
    std::vector<std::vector<uint8_t>> data;
    std::vector<ObjectName> names;
  };
  static Inputs MakeInputs(const std::string& prefix, int n, ReduceOp op, DType dtype, size_t elems, int seed) {
    Inputs in;
    for (int i = 0; i < n; ++i) {
      in.data.push_back(ReduceInput(op, dtype, elems, seed + i));
      in.names.push_back(ObjectName{"default", absl::StrCat(prefix, "/in", i)});
    }
    return in;
  }

  static LocalCluster* cluster_;
};
LocalCluster* ReduceTest::cluster_ = nullptr;

// Bytes of the size variant `v` for `dtype`: 1 element, a chunk less one element (a chunk less
// one byte for u8), a chunk plus one element, three chunks and one element.
size_t SizeVariant(int v, DType dtype) {
  const size_t w = DTypeSize(dtype);
  switch (v % 4) {
    case 0: return w;
    case 1: return kChunk - w;
    case 2: return kChunk + w;
    default: return 3 * kChunk + w;
  }
}

// Reduces n inputs (on nodes 0..n-1) with op/dtype/size and checks every element.
void RunCase(LocalCluster* cluster, ReduceOp op, DType dtype, int n, size_t bytes, const std::string& prefix) {
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<ObjectName> names;
  for (int i = 0; i < n; ++i) {
    inputs.push_back(ReduceInput(op, dtype, bytes / DTypeSize(dtype), 100 * n + i));
    ObjectName name{"default", absl::StrCat(prefix, "/in", i)};
    ASSERT_TRUE(cluster->Connect(i)->Put(name, inputs.back(), dtype).ok()) << prefix;
    names.push_back(name);
  }
  const ObjectName result{"default", prefix + "/out"};
  auto r = cluster->Connect(n - 1)->Reduce(names, result, op, dtype, 0, absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << prefix << ": " << r.status();
  EXPECT_EQ(r->used.size(), static_cast<size_t>(n)) << prefix;
  EXPECT_EQ(r->meta.size, bytes) << prefix;
  auto v = cluster->Connect(0)->Get(result, absl::Seconds(10));
  ASSERT_TRUE(v.ok()) << prefix << ": " << v.status();
  EXPECT_EQ(FirstDifference(dtype, ReduceReference(op, dtype, inputs), v->data(), v->size()), "") << prefix;
}

TEST_F(ReduceTest, EveryOpAndDtypeOnTwoToEightNodesMatchesTheScalarReference) {
  const DType dtypes[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kU8};
  const ReduceOp ops[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax};
  int c = 0;
  for (DType dtype : dtypes) {
    for (ReduceOp op : ops) {
      const int n = 2 + c % 7;
      const size_t bytes = SizeVariant(c, dtype);
      RunCase(cluster_, op, dtype, n, bytes,
              absl::StrCat("every/", DTypeName(dtype), "-", ReduceOpName(op), "-n", n, "-b", bytes));
      ++c;
    }
  }
}

TEST_F(ReduceTest, EverySizeVariantOnEightNodes) {
  for (int v = 0; v < 4; ++v) {
    for (DType dtype : {DType::kF32, DType::kU8}) {
      const size_t bytes = SizeVariant(v, dtype);
      RunCase(cluster_, ReduceOp::kSum, dtype, kNodes, bytes, absl::StrCat("sizes/", DTypeName(dtype), "-b", bytes));
    }
  }
}

TEST_F(ReduceTest, SubsetReduceTakesTheFirstReadyAndDoesNotWaitForLateInputs) {
  const DType dtype = DType::kI32;
  const ReduceOp op = ReduceOp::kSum;
  const auto [data, names] = MakeInputs("subset", 6, op, dtype, (2 * kChunk + 12) / 4, 7);
  const ObjectName result{"default", "subset/out"};
  // Started before any input exists: inputs 4, 1, 5 come first, one by one; 0, 2, 3 only later.
  auto call = std::async(std::launch::async, [&] {
    return cluster_->Connect(0)->Reduce(names, result, op, dtype, 3, absl::Seconds(30));
  });
  PutOneByOne("subset", {4, 1, 5}, data, dtype, std::chrono::milliseconds(150));
  ASSERT_EQ(call.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto r = call.get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->used, UnorderedElementsAre(4u, 1u, 5u));
  ExpectResult(2, result, op, dtype, {data[4], data[1], data[5]}, "subset");
  for (int i : {0, 2, 3}) PutInput("subset", i, data[i], dtype);   // late: no effect on the result
  ExpectResult(3, result, op, dtype, {data[4], data[1], data[5]}, "subset after the late inputs");
}

TEST_F(ReduceTest, AllReduceLeavesTheResultOnEveryParticipant) {
  const DType dtype = DType::kF32;
  const ReduceOp op = ReduceOp::kMax;
  std::vector<std::vector<uint8_t>> data;
  std::vector<ObjectName> names;
  for (int i = 0; i < 5; ++i) {
    data.push_back(ReduceInput(op, dtype, (kChunk * 5 + 8) / 4, 50 + i));
    names.push_back(PutInput("all", i, data.back(), dtype));
  }
  auto r = cluster_->Connect(1)->AllReduce(names, ObjectName{"default", "all/out"}, op, dtype, 0, absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->copies.size(), 5u);
  for (const BroadcastResult::Target& t : r->copies) EXPECT_TRUE(t.ok) << t.node << ": " << t.error;
  for (int i = 0; i < 5; ++i) {
    auto v = cluster_->Connect(i)->Get(ObjectName{"default", "all/out"}, absl::Seconds(5));
    ASSERT_TRUE(v.ok()) << "node " << i << ": " << v.status();
    EXPECT_FALSE(v->info().pulled) << "node " << i << " had no copy of the result";
    EXPECT_EQ(FirstDifference(dtype, ReduceReference(op, dtype, data), v->data(), v->size()), "") << "node " << i;
  }
}

// ReduceOptions::root: the result is built on the node asked for (a parameter server, a node a
// placement lease chose) even when its input is the last to be ready, and with k < n its input
// is always among those used.
TEST_F(ReduceTest, AChosenRootBuildsTheResultAndItsInputIsAlwaysUsed) {
  const DType dtype = DType::kF32;
  const ReduceOp op = ReduceOp::kSum;
  const auto [data, names] = MakeInputs("root", 5, op, dtype, (3 * kChunk + 8) / 4, 300);
  const ObjectName result{"default", "root/out"};
  Client::ReduceOptions o;
  o.root = "n2";
  o.timeout = absl::Seconds(30);
  auto call = std::async(std::launch::async, [&] { return cluster_->Connect(0)->Reduce(names, result, op, dtype, o); });
  PutOneByOne("root", {0, 1, 3, 4, 2}, data, dtype, std::chrono::milliseconds(100));   // the root's input last
  ASSERT_EQ(call.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto r = call.get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->root_node, "n2");
  auto v = cluster_->Connect(2)->Get(result, absl::Seconds(5));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(v->info().pulled) << "the result was not built on n2";
  EXPECT_EQ(FirstDifference(dtype, ReduceReference(op, dtype, data), v->data(), v->size()), "");

  // k = 3 of 5 with the root n4, whose input comes last: the first two others and n4's are used.
  std::vector<ObjectName> sub;
  for (int i = 0; i < 5; ++i) sub.push_back(ObjectName{"default", absl::StrCat("root-k/in", i)});
  Client::ReduceOptions k3 = o;
  k3.num_objects = 3;
  k3.root = "n4";
  auto subset = std::async(std::launch::async, [&] {
    return cluster_->Connect(1)->AllReduce(sub, ObjectName{"default", "root-k/out"}, op, dtype, k3);
  });
  PutOneByOne("root-k", {3, 0, 1, 2, 4}, data, dtype, std::chrono::milliseconds(100));
  ASSERT_EQ(subset.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto rk = subset.get();
  ASSERT_TRUE(rk.ok()) << rk.status();
  EXPECT_EQ(rk->root_node, "n4");
  EXPECT_THAT(rk->used, UnorderedElementsAre(3u, 0u, 4u));
  ExpectResult(4, ObjectName{"default", "root-k/out"}, op, dtype, {data[3], data[0], data[4]}, "k=3, root n4");

  // Bad roots: an unknown node; a node that holds none of the inputs (n7), said once every
  // input is ready. Nothing is stored under the result's name.
  Client::ReduceOptions bad = o;
  bad.timeout = absl::Seconds(10);
  bad.root = "no-such-node";
  auto unknown = cluster_->Connect(0)->Reduce(names, ObjectName{"default", "root/bad"}, op, dtype, bad);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("no-such-node"));
  bad.root = "n7";
  auto none = cluster_->Connect(0)->Reduce(names, ObjectName{"default", "root/bad"}, op, dtype, bad);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("holds none of the inputs"));
  EXPECT_EQ(cluster_->Connect(0)->Get(ObjectName{"default", "root/bad"}, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ReduceTest, BadInputIsRefusedWithAnErrorNamingIt) {
  auto c = cluster_->Connect(0);
  const ObjectName out{"default", "bad/out"};
  std::vector<uint8_t> f32(4 * 100, 0), f32_other(4 * 101, 0);
  const ObjectName a = PutInput("bad", 0, f32, DType::kF32);
  const ObjectName b = PutInput("bad", 1, f32_other, DType::kF32);   // another size
  const ObjectName i32 = PutInput("bad", 2, f32, DType::kI32);       // another dtype
  const ObjectName a2{"default", "bad/second-on-node0"};
  ASSERT_TRUE(c->Put(a2, f32, DType::kF32).ok());
  auto expect = [&](absl::StatusOr<ReduceResult> r, absl::StatusCode code, const std::string& text) {
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(text));
  };
  const auto s = absl::Seconds(5);
  expect(c->Reduce({}, out, ReduceOp::kSum, DType::kF32, 0, s), absl::StatusCode::kInvalidArgument, "input list is empty");
  std::vector<ObjectName> ab = {a, b};
  expect(c->Reduce(ab, out, ReduceOp::kSum, DType::kF32, 3, s), absl::StatusCode::kInvalidArgument,
         "num_objects 3 is out of range");
  expect(c->Reduce(ab, out, ReduceOp::kSum, DType::kBytes, 0, s), absl::StatusCode::kInvalidArgument,
         "is not defined on dtype bytes");
  expect(c->Reduce(ab, out, static_cast<ReduceOp>(9), DType::kF32, 0, s), absl::StatusCode::kInvalidArgument,
         "unknown op 9");
  std::vector<ObjectName> dup = {a, a};
  expect(c->Reduce(dup, out, ReduceOp::kSum, DType::kF32, 0, s), absl::StatusCode::kInvalidArgument,
         "bad/in0 is named twice");
  expect(c->Reduce(ab, out, ReduceOp::kSum, DType::kF32, 0, s), absl::StatusCode::kInvalidArgument,
         "has 404 bytes, the inputs before it 400");
  std::vector<ObjectName> mixed = {a, i32};
  expect(c->Reduce(mixed, out, ReduceOp::kSum, DType::kF32, 0, s), absl::StatusCode::kInvalidArgument,
         "has dtype i32, the reduce is over f32");
  std::vector<ObjectName> same_node = {a, a2};
  expect(c->Reduce(same_node, out, ReduceOp::kSum, DType::kF32, 0, s), absl::StatusCode::kInvalidArgument,
         "one input per node");
  std::vector<ObjectName> exists = {a, i32};
  expect(c->Reduce(exists, a2, ReduceOp::kSum, DType::kF32, 0, s), absl::StatusCode::kAlreadyExists,
         "already exists");
  // A size that is not a multiple of the dtype is refused when the input is created.
  std::vector<uint8_t> six(6, 0);
  EXPECT_EQ(c->Put(ObjectName{"default", "bad/six"}, six, DType::kF32).code(), absl::StatusCode::kInvalidArgument);
  // An input that never comes: the deadline names it.
  std::vector<ObjectName> missing = {a, ObjectName{"default", "bad/never"}};
  expect(c->Reduce(missing, out, ReduceOp::kSum, DType::kF32, 0, absl::Milliseconds(800)),
         absl::StatusCode::kDeadlineExceeded, "never ready: default/bad/never");
  // Nothing was stored under the result's name by the failed calls.
  EXPECT_EQ(c->Get(out, absl::ZeroDuration()).status().code(), absl::StatusCode::kNotFound);
}

// ferryd --reduce-scratch sizes the scratch: with one set (8MiB) per node every reduce still
// completes, two at once included (a position waits for the node's one set), and ferryd says so.
TEST(ReduceScratchTest, OneScratchSetPerNodeStillReducesConcurrently) {
  ClusterOptions o;
  o.nodes = 5;
  o.arena = "64MiB";
  o.coord_flags = {"--fixed-chunk", "64KiB"};
  o.ferryd_flags = {"--reduce-scratch", "8MiB"};
  LocalCluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << "cluster did not start; logs in " << cluster.dir();
  std::ifstream in(cluster.log(0));
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(log, HasSubstr("8.00 MiB of reduce scratch (1 positions building at once)"));
  RunCase(&cluster, ReduceOp::kSum, DType::kF32, 5, 3 * kChunk + 4, "scratch1");
  auto a = std::async(std::launch::async,
                      [&] { RunCase(&cluster, ReduceOp::kMax, DType::kI32, 5, 5 * kChunk + 4, "scratch2a"); });
  auto b = std::async(std::launch::async,
                      [&] { RunCase(&cluster, ReduceOp::kSum, DType::kF64, 5, 5 * kChunk + 8, "scratch2b"); });
  a.get();
  b.get();
}

}  // namespace
}  // namespace ferry::testing
