// Model shapes for ferry-perf's weight-sync workloads (issue 14): the list of tensors one
// model version consists of. Pure: no I/O, no ferry calls; unit-tested in
// tests/perf/model_shape_test.cc.
//
// Kinds (sizes at --model-scale 1; bf16 elements, so every size is even):
//   mix    a dense transformer (d 1024, 16 layers, vocab 131072, untied head): 292 tensors
//          from 128 B (per-head q/k norms) and 2 KiB (biases, layer norms) up to 256 MiB
//          (embedding, head); 1,023,860,736 B (976.4 MiB) in all.
//   moe    a mixture of experts (d 512, 16 layers, 208 experts of width 40 per layer, a
//          shared expert, GQA attention): 10,179 tensors, 9,984 of them 40 KiB expert
//          matrices; 549,229,568 B (523.8 MiB) in all.
//   small  1,000 objects of 4 KiB (4,000 KiB).
// Scaling: every tensor larger than kScaleThreshold (64 KiB) is multiplied by the scale
// (rounded down to a whole element, at least kScaleThreshold); smaller tensors keep their
// size, so the tensor count and the small-object population do not change and the total
// scales almost exactly (mix at 0.25: 256,303,104 B, 244.4 MiB; moe at 0.5 keeps its experts:
// 456.9 MiB). `small` ignores the scale.
// The seed fixes the order in which the tensors are listed (a shuffle: the order a client
// issues them in); the layout itself depends only on kind and scale.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::perf {

enum class ModelKind { kMix, kMoe, kSmall };

// "mix", "moe", "small"; nullopt otherwise.
std::optional<ModelKind> ModelKindFromName(std::string_view name);
const char* ModelKindName(ModelKind kind);

inline constexpr uint64_t kScaleThreshold = 64 << 10;
inline constexpr uint64_t kElementBytes = 2;  // bf16

struct TensorSpec {
  std::string name;    // e.g. "layers.3.mlp.up.weight"; unique within a shape
  uint64_t bytes = 0;  // > 0, a multiple of kElementBytes
};

struct ModelShape {
  ModelKind kind = ModelKind::kMix;
  double scale = 1.0;
  uint64_t seed = 0;
  std::vector<TensorSpec> tensors;  // in issue order
  uint64_t total_bytes = 0;         // sum of tensors[i].bytes
  uint64_t max_bytes = 0;           // largest tensor
  uint64_t min_bytes = 0;           // smallest tensor
};

// The shape of `kind` at `scale` (> 0) with issue order shuffled by `seed`. Deterministic:
// the same arguments give the same shape on every machine.
ModelShape MakeModelShape(ModelKind kind, double scale, uint64_t seed);

// One bucket of the size histogram: tensors with lo <= bytes < hi (hi 0: no upper end).
struct SizeBucket {
  uint64_t lo = 0;
  uint64_t hi = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;
};
// Non-empty buckets in power-of-4 steps from 1 KiB ([0,1K), [1K,4K), ..., [256M, inf)),
// smallest first.
std::vector<SizeBucket> SizeHistogram(const ModelShape& shape);

// "mix x0.25 seed 0: 292 tensors, 256303104 B (244.4 MiB), 128 B .. 64.0 MiB; <1K: 64
//  (20.0 KiB) 1K-4K: ..." on one line.
std::string DescribeShape(const ModelShape& shape);

}  // namespace ferry::perf
