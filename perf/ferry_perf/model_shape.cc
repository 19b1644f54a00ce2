#include "perf/ferry_perf/model_shape.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "perf/ferry_perf/pattern.h"

namespace ferry::perf {
namespace {

// Collects tensors given in elements, applying the scale rule of the header.
class Builder {
 public:
  explicit Builder(double scale) : scale_(scale) {}
  void Add(std::string name, uint64_t elements) {
    uint64_t bytes = elements * kElementBytes;
    if (bytes > kScaleThreshold) {
      const double scaled = std::floor(static_cast<double>(bytes) * scale_ /
                                       static_cast<double>(kElementBytes));
      bytes = std::max<uint64_t>(static_cast<uint64_t>(scaled) * kElementBytes, kScaleThreshold);
    }
    tensors_.push_back({std::move(name), bytes});
  }
  std::vector<TensorSpec> Take() { return std::move(tensors_); }

 private:
  double scale_;
  std::vector<TensorSpec> tensors_;
};

// A LLaMA/Qwen-like dense transformer with biases (Qwen2-style q/k/v biases, LayerNorm with
// bias) and per-head q/k norms: 18 tensors per layer.
void AddMix(Builder& b) {
  constexpr uint64_t kD = 1024, kLayers = 16, kVocab = 131072, kHeadDim = 64, kKv = 256,
                     kFfn = 4096;
  b.Add("embed_tokens.weight", kVocab * kD);
  for (uint64_t l = 0; l < kLayers; ++l) {
    const std::string p = absl::StrCat("layers.", l, ".");
    b.Add(p + "input_norm.weight", kD);
    b.Add(p + "input_norm.bias", kD);
    b.Add(p + "attn.q.weight", kD * kD);
    b.Add(p + "attn.q.bias", kD);
    b.Add(p + "attn.k.weight", kD * kKv);
    b.Add(p + "attn.k.bias", kKv);
    b.Add(p + "attn.v.weight", kD * kKv);
    b.Add(p + "attn.v.bias", kKv);
    b.Add(p + "attn.q_norm.weight", kHeadDim);
    b.Add(p + "attn.k_norm.weight", kHeadDim);
    b.Add(p + "attn.o.weight", kD * kD);
    b.Add(p + "post_attn_norm.weight", kD);
    b.Add(p + "post_attn_norm.bias", kD);
    b.Add(p + "mlp.gate.weight", kD * kFfn);
    b.Add(p + "mlp.gate.bias", kFfn);
    b.Add(p + "mlp.up.weight", kD * kFfn);
    b.Add(p + "mlp.up.bias", kFfn);
    b.Add(p + "mlp.down.weight", kFfn * kD);
  }
  b.Add("final_norm.weight", kD);
  b.Add("final_norm.bias", kD);
  b.Add("lm_head.weight", kVocab * kD);
}

// Mixture of experts: per layer GQA attention, a router, a shared expert and 208 routed
// experts of width 40 (3 matrices of 40 KiB each).
void AddMoe(Builder& b) {
  constexpr uint64_t kD = 512, kLayers = 16, kVocab = 32000, kHeadDim = 64, kKv = 128,
                     kExperts = 208, kExpertWidth = 40, kSharedWidth = 1024;
  b.Add("embed_tokens.weight", kVocab * kD);
  for (uint64_t l = 0; l < kLayers; ++l) {
    const std::string p = absl::StrCat("layers.", l, ".");
    b.Add(p + "input_norm.weight", kD);
    b.Add(p + "attn.q.weight", kD * kD);
    b.Add(p + "attn.k.weight", kD * kKv);
    b.Add(p + "attn.v.weight", kD * kKv);
    b.Add(p + "attn.q_norm.weight", kHeadDim);
    b.Add(p + "attn.k_norm.weight", kHeadDim);
    b.Add(p + "attn.o.weight", kD * kD);
    b.Add(p + "post_attn_norm.weight", kD);
    b.Add(p + "moe.router.weight", kD * kExperts);
    for (const char* m : {"gate", "up", "down"}) {
      b.Add(absl::StrCat(p, "moe.shared.", m, ".weight"), kD * kSharedWidth);
    }
    for (uint64_t e = 0; e < kExperts; ++e) {
      for (const char* m : {"gate", "up", "down"}) {
        b.Add(absl::StrCat(p, "moe.experts.", e, ".", m, ".weight"), kD * kExpertWidth);
      }
    }
  }
  b.Add("final_norm.weight", kD);
  b.Add("lm_head.weight", kVocab * kD);
}

void AddSmall(Builder& b) {
  for (int i = 0; i < 1000; ++i) b.Add(absl::StrFormat("obj.%03d", i), 4096 / kElementBytes);
}

// Fisher-Yates with splitmix64, so the order is the same with every standard library.
void Shuffle(std::vector<TensorSpec>& v, uint64_t seed) {
  uint64_t state = seed;
  for (size_t i = v.size(); i > 1; --i) {
    state = SplitMix64(state);
    std::swap(v[i - 1], v[state % i]);
  }
}

std::string Bytes(uint64_t b) {
  if (b >= (1ull << 30)) return absl::StrFormat("%.1f GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (1ull << 20)) return absl::StrFormat("%.1f MiB", static_cast<double>(b) / (1 << 20));
  if (b >= (1ull << 10)) return absl::StrFormat("%.1f KiB", static_cast<double>(b) / (1 << 10));
  return absl::StrCat(b, " B");
}

std::string Edge(uint64_t b) {
  if (b >= (1ull << 30) && b % (1ull << 30) == 0) return absl::StrCat(b >> 30, "G");
  if (b >= (1ull << 20) && b % (1ull << 20) == 0) return absl::StrCat(b >> 20, "M");
  if (b >= (1ull << 10) && b % (1ull << 10) == 0) return absl::StrCat(b >> 10, "K");
  return absl::StrCat(b);
}

}  // namespace

std::optional<ModelKind> ModelKindFromName(std::string_view name) {
  if (name == "mix") return ModelKind::kMix;
  if (name == "moe") return ModelKind::kMoe;
  if (name == "small") return ModelKind::kSmall;
  return std::nullopt;
}

const char* ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kMix:
      return "mix";
    case ModelKind::kMoe:
      return "moe";
    case ModelKind::kSmall:
      return "small";
  }
  return "?";
}

ModelShape MakeModelShape(ModelKind kind, double scale, uint64_t seed) {
  ModelShape shape;
  shape.kind = kind;
  shape.scale = kind == ModelKind::kSmall ? 1.0 : scale;
  shape.seed = seed;
  Builder b(shape.scale);
  switch (kind) {
    case ModelKind::kMix:
      AddMix(b);
      break;
    case ModelKind::kMoe:
      AddMoe(b);
      break;
    case ModelKind::kSmall:
      AddSmall(b);
      break;
  }
  shape.tensors = b.Take();
  if (seed != 0) Shuffle(shape.tensors, seed);
  shape.min_bytes = UINT64_MAX;
  for (const TensorSpec& t : shape.tensors) {
    shape.total_bytes += t.bytes;
    shape.max_bytes = std::max(shape.max_bytes, t.bytes);
    shape.min_bytes = std::min(shape.min_bytes, t.bytes);
  }
  if (shape.tensors.empty()) shape.min_bytes = 0;
  return shape;
}

std::vector<SizeBucket> SizeHistogram(const ModelShape& shape) {
  // [0,1K), [1K,4K), ..., [64M,256M), [256M, inf): 11 buckets.
  std::vector<SizeBucket> all;
  uint64_t lo = 0, hi = 1 << 10;
  for (int i = 0; i < 11; ++i) {
    all.push_back({lo, i == 10 ? 0 : hi, 0, 0});
    lo = hi;
    hi *= 4;
  }
  for (const TensorSpec& t : shape.tensors) {
    for (SizeBucket& bucket : all) {
      if (t.bytes >= bucket.lo && (bucket.hi == 0 || t.bytes < bucket.hi)) {
        ++bucket.count;
        bucket.bytes += t.bytes;
        break;
      }
    }
  }
  std::vector<SizeBucket> out;
  for (const SizeBucket& bucket : all) {
    if (bucket.count > 0) out.push_back(bucket);
  }
  return out;
}

std::string DescribeShape(const ModelShape& shape) {
  std::string s = absl::StrFormat("%s x%g seed %d: %d tensors, %d B (%s), %s .. %s;",
                                  ModelKindName(shape.kind), shape.scale, shape.seed,
                                  shape.tensors.size(), shape.total_bytes, Bytes(shape.total_bytes),
                                  Bytes(shape.min_bytes), Bytes(shape.max_bytes));
  bool first = true;
  for (const SizeBucket& b : SizeHistogram(shape)) {
    const std::string range = b.lo == 0 ? absl::StrCat("<", Edge(b.hi))
                              : b.hi == 0 ? absl::StrCat(">=", Edge(b.lo))
                                          : absl::StrCat(Edge(b.lo), "-", Edge(b.hi));
    absl::StrAppend(&s, first ? " " : ", ", range, ": ", b.count, " (", Bytes(b.bytes), ")");
    first = false;
  }
  return s;
}

}  // namespace ferry::perf
