#include "tests/integration/reduce_reference.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/dtype.h"

namespace ferry::testing {
namespace {

// f32 <-> f16 / bf16 for the exact values used here (zero and normal numbers); a wider value
// decodes correctly too, so a wrong result prints as what it is.
uint16_t ToHalf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000);
  if ((b & 0x7fffffff) == 0) return sign;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  return static_cast<uint16_t>(sign | (exp << 10) | ((b >> 13) & 0x3ff));
}
float FromHalf(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = static_cast<float>(mant) * (1.0f / 16777216.0f);   // subnormal: mant * 2^-24
  } else if (exp == 31) {
    v = mant != 0 ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    const uint32_t b = (static_cast<uint32_t>(exp - 15 + 127) << 23) | (mant << 13);
    std::memcpy(&v, &b, 4);
    return sign != 0 ? -v : v;
  }
  return sign != 0 ? -v : v;
}
uint16_t ToBf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<uint16_t>(b >> 16);
}
float FromBf16(uint16_t h) {
  const uint32_t b = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16; }

// Element i as a double (floats) or as its bits zero-extended (integers).
double GetFloat(DType d, const uint8_t* p, size_t i) {
  switch (d) {
    case DType::kF32: { float f; std::memcpy(&f, p + 4 * i, 4); return f; }
    case DType::kF64: { double v; std::memcpy(&v, p + 8 * i, 8); return v; }
    case DType::kF16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return FromHalf(h); }
    default: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return FromBf16(h); }
  }
}
void PutFloat(DType d, uint8_t* p, size_t i, double v) {
  switch (d) {
    case DType::kF32: { float f = static_cast<float>(v); std::memcpy(p + 4 * i, &f, 4); return; }
    case DType::kF64: std::memcpy(p + 8 * i, &v, 8); return;
    case DType::kF16: { uint16_t h = ToHalf(static_cast<float>(v)); std::memcpy(p + 2 * i, &h, 2); return; }
    default: { uint16_t h = ToBf16(static_cast<float>(v)); std::memcpy(p + 2 * i, &h, 2); return; }
  }
}
uint64_t GetInt(DType d, const uint8_t* p, size_t i) {
  uint64_t v = 0;
  std::memcpy(&v, p + DTypeSize(d) * i, DTypeSize(d));
  return v;
}
void PutInt(DType d, uint8_t* p, size_t i, uint64_t v) { std::memcpy(p + DTypeSize(d) * i, &v, DTypeSize(d)); }

// Signed value of an integer element's bits (u8 is unsigned).
int64_t Signed(DType d, uint64_t v) {
  if (d == DType::kI32) return static_cast<int32_t>(static_cast<uint32_t>(v));
  if (d == DType::kI64) return static_cast<int64_t>(v);
  return static_cast<int64_t>(v & 0xff);
}

uint64_t CombineInt(ReduceOp op, DType d, uint64_t a, uint64_t b) {
  const uint64_t mask = d == DType::kI64 ? ~uint64_t{0} : d == DType::kI32 ? 0xffffffffu : 0xffu;
  switch (op) {
    case ReduceOp::kSum: return (a + b) & mask;
    case ReduceOp::kProd: return (a * b) & mask;
    case ReduceOp::kMin: return Signed(d, a) <= Signed(d, b) ? a : b;
    default: return Signed(d, a) >= Signed(d, b) ? a : b;
  }
}
double CombineFloat(ReduceOp op, double a, double b) {
  switch (op) {
    case ReduceOp::kSum: return a + b;
    case ReduceOp::kProd: return a * b;
    case ReduceOp::kMin: return std::min(a, b);
    default: return std::max(a, b);
  }
}

}  // namespace

std::vector<uint8_t> ReduceInput(ReduceOp op, DType dtype, size_t elems, uint64_t seed) {
  std::mt19937_64 rng(seed * 7919 + static_cast<uint64_t>(dtype) * 31 + static_cast<uint64_t>(op));
  std::vector<uint8_t> out(elems * DTypeSize(dtype));
  static constexpr double kProdValues[] = {-2, -1, -0.5, 0.5, 1, 2};
  for (size_t i = 0; i < elems; ++i) {
    if (IsFloat(dtype)) {
      const double v = op == ReduceOp::kProd ? kProdValues[rng() % 6] : static_cast<double>(static_cast<int>(rng() % 17) - 8);
      PutFloat(dtype, out.data(), i, v);
    } else {
      PutInt(dtype, out.data(), i, rng());
    }
  }
  return out;
}

std::vector<uint8_t> ReduceReference(ReduceOp op, DType dtype, const std::vector<std::vector<uint8_t>>& inputs) {
  std::vector<uint8_t> out = inputs.front();
  const size_t elems = out.size() / DTypeSize(dtype);
  for (size_t k = 1; k < inputs.size(); ++k) {
    for (size_t i = 0; i < elems; ++i) {
      if (IsFloat(dtype)) {
        PutFloat(dtype, out.data(), i,
                 CombineFloat(op, GetFloat(dtype, out.data(), i), GetFloat(dtype, inputs[k].data(), i)));
      } else {
        PutInt(dtype, out.data(), i, CombineInt(op, dtype, GetInt(dtype, out.data(), i), GetInt(dtype, inputs[k].data(), i)));
      }
    }
  }
  return out;
}

std::string FirstDifference(DType dtype, const std::vector<uint8_t>& want, const uint8_t* got, size_t size) {
  if (size != want.size()) return absl::StrCat("size ", size, ", expected ", want.size());
  const size_t w = DTypeSize(dtype);
  for (size_t i = 0; i < size / w; ++i) {
    if (std::memcmp(want.data() + i * w, got + i * w, w) == 0) continue;
    if (IsFloat(dtype)) {
      return absl::StrFormat("element %d of %d: expected %.17g, got %.17g", i, size / w, GetFloat(dtype, want.data(), i),
                             GetFloat(dtype, got, i));
    }
    return absl::StrCat("element ", i, " of ", size / w, ": expected ", Signed(dtype, GetInt(dtype, want.data(), i)),
                        ", got ", Signed(dtype, GetInt(dtype, got, i)));
  }
  return "";
}

}  // namespace ferry::testing
