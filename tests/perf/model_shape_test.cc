// The weight-sync model shapes (perf/ferry_perf/model_shape.h): deterministic, the totals and
// counts the header documents, sizes within the documented bounds, the scale rule, and the
// bounded-concurrency loop the per-object SDK calls run on.
#include "perf/ferry_perf/model_shape.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "perf/ferry_perf/model_sync.h"

namespace ferry::perf {
namespace {

constexpr char kSmallSeed1First[] = "obj.136";

std::vector<std::pair<std::string, uint64_t>> Entries(const ModelShape& s) {
  std::vector<std::pair<std::string, uint64_t>> v;
  for (const TensorSpec& t : s.tensors) v.emplace_back(t.name, t.bytes);
  return v;
}

// Invariants every shape has: unique names, positive even sizes, consistent totals, and a
// histogram that accounts for every tensor and byte.
void ExpectWellFormed(const ModelShape& s) {
  std::set<std::string> names;
  uint64_t total = 0, lo = UINT64_MAX, hi = 0;
  for (const TensorSpec& t : s.tensors) {
    EXPECT_TRUE(names.insert(t.name).second) << "duplicate " << t.name;
    EXPECT_GT(t.bytes, 0u) << t.name;
    EXPECT_EQ(t.bytes % kElementBytes, 0u) << t.name;
    total += t.bytes;
    lo = std::min(lo, t.bytes);
    hi = std::max(hi, t.bytes);
  }
  EXPECT_EQ(s.total_bytes, total);
  EXPECT_EQ(s.min_bytes, lo);
  EXPECT_EQ(s.max_bytes, hi);
  uint64_t count = 0, bytes = 0;
  for (const SizeBucket& b : SizeHistogram(s)) {
    EXPECT_GT(b.count, 0u);
    count += b.count;
    bytes += b.bytes;
  }
  EXPECT_EQ(count, s.tensors.size());
  EXPECT_EQ(bytes, s.total_bytes);
}

TEST(ModelShape, MixIsADenseModelOfAboutOneGigabyte) {
  const ModelShape s = MakeModelShape(ModelKind::kMix, 1.0, 0);
  ExpectWellFormed(s);
  EXPECT_EQ(s.tensors.size(), 292u);
  EXPECT_EQ(s.total_bytes, 1'023'860'736u);
  EXPECT_EQ(s.min_bytes, 128u);        // per-head q/k norms
  EXPECT_EQ(s.max_bytes, 256u << 20);  // embedding and head
  EXPECT_EQ(s.tensors.front().name, "embed_tokens.weight");  // seed 0: state-dict order
  EXPECT_EQ(s.tensors.back().name, "lm_head.weight");
  // A real mix: a few hundred bytes, KiBs, MiBs and hundreds of MiB all occur.
  std::map<uint64_t, uint64_t> by_lo;
  for (const SizeBucket& b : SizeHistogram(s)) by_lo[b.lo] = b.count;
  EXPECT_EQ(by_lo[0], 64u);           // 128 B norms and 512 B k/v biases
  EXPECT_EQ(by_lo[1u << 20], 32u);    // 2 MiB q and o
  EXPECT_EQ(by_lo[256u << 20], 2u);   // 256 MiB embedding, head
}

TEST(ModelShape, ScaleShrinksOnlyTheLargeTensors) {
  const ModelShape full = MakeModelShape(ModelKind::kMix, 1.0, 0);
  const ModelShape quarter = MakeModelShape(ModelKind::kMix, 0.25, 0);
  ExpectWellFormed(quarter);
  ASSERT_EQ(quarter.tensors.size(), full.tensors.size());
  EXPECT_EQ(quarter.total_bytes, 256'303'104u);  // 244 MiB of matrices + 440 KiB of small ones
  for (size_t i = 0; i < full.tensors.size(); ++i) {
    const uint64_t f = full.tensors[i].bytes, q = quarter.tensors[i].bytes;
    EXPECT_EQ(quarter.tensors[i].name, full.tensors[i].name);
    if (f <= kScaleThreshold) {
      EXPECT_EQ(q, f) << full.tensors[i].name;
    } else {
      EXPECT_EQ(q, std::max<uint64_t>(f / 4, kScaleThreshold)) << full.tensors[i].name;
    }
  }
  // A tiny scale never takes a large tensor below the threshold.
  const ModelShape tiny = MakeModelShape(ModelKind::kMix, 0.001, 0);
  ExpectWellFormed(tiny);
  for (size_t i = 0; i < full.tensors.size(); ++i) {
    const uint64_t f = full.tensors[i].bytes, t = tiny.tensors[i].bytes;
    if (f > kScaleThreshold) {
      EXPECT_GE(t, kScaleThreshold) << full.tensors[i].name;
      EXPECT_LE(t, std::max<uint64_t>(f / 1000 + kElementBytes, kScaleThreshold)) << full.tensors[i].name;
    }
  }
}

TEST(ModelShape, MoeIsTenThousandTensorsOfTensOfKibibytes) {
  const ModelShape s = MakeModelShape(ModelKind::kMoe, 1.0, 0);
  ExpectWellFormed(s);
  EXPECT_EQ(s.tensors.size(), 10'179u);
  EXPECT_EQ(s.total_bytes, 549'229'568u);
  const auto experts = std::count_if(s.tensors.begin(), s.tensors.end(),
                                     [](const TensorSpec& t) { return t.bytes == 40u << 10; });
  EXPECT_EQ(experts, 16 * 208 * 3);
  EXPECT_LE(s.max_bytes, 64u << 20);
  // At 0.5 the experts stay 40 KiB: the small-object population is what moe is about.
  const ModelShape half = MakeModelShape(ModelKind::kMoe, 0.5, 0);
  EXPECT_EQ(half.tensors.size(), s.tensors.size());
  EXPECT_EQ(std::count_if(half.tensors.begin(), half.tensors.end(),
                          [](const TensorSpec& t) { return t.bytes == 40u << 10; }),
            experts);
  EXPECT_LT(half.total_bytes, s.total_bytes);
}

TEST(ModelShape, SmallIsAThousandFourKibibyteObjectsAtAnyScale) {
  for (double scale : {1.0, 0.25, 3.0}) {
    const ModelShape s = MakeModelShape(ModelKind::kSmall, scale, 0);
    ExpectWellFormed(s);
    EXPECT_EQ(s.tensors.size(), 1000u);
    EXPECT_EQ(s.total_bytes, 1000u * 4096u);
    EXPECT_EQ(s.min_bytes, 4096u);
    EXPECT_EQ(s.max_bytes, 4096u);
  }
}

TEST(ModelShape, DeterministicAndTheSeedOnlyReorders) {
  for (ModelKind kind : {ModelKind::kMix, ModelKind::kMoe, ModelKind::kSmall}) {
    const ModelShape a = MakeModelShape(kind, 0.5, 7), b = MakeModelShape(kind, 0.5, 7);
    EXPECT_EQ(Entries(a), Entries(b)) << ModelKindName(kind);
    const ModelShape natural = MakeModelShape(kind, 0.5, 0);
    const ModelShape other = MakeModelShape(kind, 0.5, 8);
    EXPECT_NE(Entries(a), Entries(natural)) << ModelKindName(kind);
    EXPECT_NE(Entries(a), Entries(other)) << ModelKindName(kind);
    auto sorted = [](std::vector<std::pair<std::string, uint64_t>> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    EXPECT_EQ(sorted(Entries(a)), sorted(Entries(natural))) << ModelKindName(kind);
    EXPECT_EQ(a.total_bytes, natural.total_bytes);
  }
  // Pinned: a change to the generator or the shuffle shows up here, not as a silent shift
  // in the benchmark's figures.
  const ModelShape s = MakeModelShape(ModelKind::kSmall, 1.0, 1);
  EXPECT_EQ(s.tensors[0].name, kSmallSeed1First);
}

TEST(ModelShape, NamesAndDescription) {
  EXPECT_EQ(ModelKindFromName("mix"), ModelKind::kMix);
  EXPECT_EQ(ModelKindFromName("moe"), ModelKind::kMoe);
  EXPECT_EQ(ModelKindFromName("small"), ModelKind::kSmall);
  EXPECT_FALSE(ModelKindFromName("dense"));
  const std::string d = DescribeShape(MakeModelShape(ModelKind::kMix, 0.25, 0));
  EXPECT_NE(d.find("mix x0.25 seed 0: 292 tensors, 256303104 B (244.4 MiB), 128 B .. 64.0 MiB;"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("<1K: 64"), std::string::npos) << d;
  EXPECT_NE(d.find(", 64M-256M: 2 (128.0 MiB)"), std::string::npos) << d;  // embedding, head
}

TEST(ModelSync, ForEachBoundedRunsEachIndexOnceWithinTheBound) {
  std::vector<std::atomic<int>> runs(1000);
  std::atomic<int> active{0}, peak{0};
  ASSERT_TRUE(ForEachBounded(runs.size(), 8, [&](size_t i) {
                const int now = ++active;
                int p = peak.load();
                while (now > p && !peak.compare_exchange_weak(p, now)) {
                }
                ++runs[i];
                --active;
                return absl::OkStatus();
              }).ok());
  for (const std::atomic<int>& r : runs) EXPECT_EQ(r.load(), 1);
  EXPECT_LE(peak.load(), 8);
  EXPECT_GE(peak.load(), 1);
  // An error stops new work and is returned (the lowest failing index's).
  std::atomic<int> started{0};
  const absl::Status s = ForEachBounded(1000, 4, [&](size_t i) {
    ++started;
    return i == 10 ? absl::NotFoundError("tensor 10") : absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "tensor 10");
  EXPECT_LT(started.load(), 1000);
  EXPECT_TRUE(ForEachBounded(0, 4, [](size_t) { return absl::InternalError("never"); }).ok());
}

}  // namespace
}  // namespace ferry::perf
