// ReduceInto (core/reduce.h): every op x dtype against a scalar reference, the sizes around the
// kernel's block boundaries, unaligned pointers, integer wrap-around, NaN, the 16-bit float
// conversions, and bad input.
#include "core/reduce.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"

namespace ferry {
namespace {

constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax};
// Both kernel sets: what ReduceInto picks on this CPU, and the portable loops (the same unless
// the CPU has a specific path, e.g. F16C).
using ReduceFn = absl::Status (*)(ReduceOp, DType, void*, const void*, size_t);
struct Path {
  const char* name;
  ReduceFn fn;
};
constexpr Path kPaths[] = {{"ReduceInto", &ReduceInto}, {"portable", &internal::ReduceIntoPortable}};

constexpr DType kNumeric[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16,
                              DType::kI32, DType::kI64, DType::kU8};

// ---- an independent reference for the 16-bit floats: decode exactly, round by table --------
double DecodeF16(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 0x1f) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(mant + 1024, exp - 25);
}
double DecodeBF16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
double Decode16(DType dtype, uint16_t h) { return dtype == DType::kF16 ? DecodeF16(h) : DecodeBF16(h); }

// Round `x` to the nearest 16-bit value, ties to the even bit pattern, by search over every
// finite positive value of the type (sorted by construction: the patterns 0..0x7bff / 0x7f7f).
uint16_t Round16(DType dtype, double x) {
  if (std::isnan(x)) return 0x7fff;   // any NaN; compared as "is NaN"
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  const uint16_t max_finite = dtype == DType::kF16 ? 0x7bff : 0x7f7f;
  const double top = Decode16(dtype, max_finite);
  const double next = top + (top - Decode16(dtype, max_finite - 1));   // where Inf starts after rounding
  if (a >= (top + next) / 2) return sign | (max_finite + 1);   // a tie goes to Inf: max_finite is odd
  uint16_t lo = 0;
  uint16_t hi = max_finite;
  while (hi - lo > 1) {   // invariant: value(lo) <= a <= value(hi)
    const uint16_t mid = static_cast<uint16_t>((lo + hi) / 2);
    (Decode16(dtype, mid) <= a ? lo : hi) = mid;
  }
  const double dlo = a - Decode16(dtype, lo);
  const double dhi = Decode16(dtype, hi) - a;
  const uint16_t pick = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) == 0 ? lo : hi);
  return sign | pick;
}

double ApplyDouble(ReduceOp op, double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  switch (op) {
    case ReduceOp::kSum: return a + b;
    case ReduceOp::kProd: return a * b;
    case ReduceOp::kMin: return std::min(a, b);
    case ReduceOp::kMax: return std::max(a, b);
  }
  return NAN;
}

template <typename T>
T ApplyNative(ReduceOp op, T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (op != ReduceOp::kSum && op != ReduceOp::kProd && (std::isnan(a) || std::isnan(b))) {
      return std::isnan(a) ? a : b;
    }
  }
  using U = typename std::conditional_t<std::is_integral_v<T>, std::make_unsigned<T>, std::type_identity<T>>::type;
  switch (op) {
    case ReduceOp::kSum: return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
    case ReduceOp::kProd: return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
    case ReduceOp::kMin: return b < a ? b : a;
    case ReduceOp::kMax: return b > a ? b : a;
  }
  return a;
}

// Random elements as raw bytes: floats in [-4, 4) (products stay finite), integers over their
// full range (sums and products wrap).
std::vector<uint8_t> RandomElements(DType dtype, size_t count, std::mt19937_64& rng) {
  std::vector<uint8_t> out(count * DTypeSize(dtype));
  std::uniform_real_distribution<double> real(-4.0, 4.0);
  for (size_t i = 0; i < count; ++i) {
    uint8_t* p = out.data() + i * DTypeSize(dtype);
    const uint64_t bits = rng();
    switch (dtype) {
      case DType::kF32: { const float f = static_cast<float>(real(rng)); std::memcpy(p, &f, 4); break; }
      case DType::kF64: { const double d = real(rng); std::memcpy(p, &d, 8); break; }
      case DType::kF16:
      case DType::kBF16: { const uint16_t h = Round16(dtype, real(rng)); std::memcpy(p, &h, 2); break; }
      default: std::memcpy(p, &bits, DTypeSize(dtype)); break;
    }
  }
  return out;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Checks element i of `got` against the reference for op(a, b); returns a failure message.
std::string CheckElement(ReduceOp op, DType dtype, const uint8_t* a, const uint8_t* b, const uint8_t* got) {
  auto native = [&](auto tag) -> std::string {
    using T = decltype(tag);
    const T want = ApplyNative<T>(op, Load<T>(a), Load<T>(b));
    const T have = Load<T>(got);
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(want) && std::isnan(have)) return "";
    }
    return std::memcmp(&want, &have, sizeof(T)) == 0 ? "" : "want " + std::to_string(want) + " got " + std::to_string(have);
  };
  switch (dtype) {
    case DType::kF32: return native(float{});
    case DType::kF64: return native(double{});
    case DType::kI32: return native(int32_t{});
    case DType::kI64: return native(int64_t{});
    case DType::kU8: return native(uint8_t{});
    default: break;
  }
  const double exact = ApplyDouble(op, Decode16(dtype, Load<uint16_t>(a)), Decode16(dtype, Load<uint16_t>(b)));
  const uint16_t have = Load<uint16_t>(got);
  if (std::isnan(exact)) return std::isnan(Decode16(dtype, have)) ? "" : "want NaN";
  const uint16_t want = Round16(dtype, exact);
  // One f32 rounding before the 16-bit one: the result may be the neighbour of the correctly
  // rounded value (never further), and is exact whenever the f32 result is (products, min, max).
  const bool exact_in_f32 = op != ReduceOp::kSum;
  const int diff = std::abs(static_cast<int>(have) - static_cast<int>(want));
  if (have == want || (!exact_in_f32 && diff == 1 && ((have ^ want) & 0x8000) == 0)) return "";
  return "exact " + std::to_string(exact) + " want bits " + std::to_string(want) + " got " + std::to_string(have);
}

// Runs ReduceInto on `count` random elements at byte offsets dst_skew / src_skew of their
// buffers and compares every element with the reference.
void CheckRandom(ReduceFn fn, ReduceOp op, DType dtype, size_t count, size_t dst_skew, size_t src_skew,
                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t bytes = count * DTypeSize(dtype);
  const std::vector<uint8_t> a = RandomElements(dtype, count, rng);
  const std::vector<uint8_t> b = RandomElements(dtype, count, rng);
  std::vector<uint8_t> dst_buf(bytes + dst_skew + 16, 0xa5);
  std::vector<uint8_t> src_buf(bytes + src_skew + 16, 0x5a);
  if (bytes > 0) std::memcpy(dst_buf.data() + dst_skew, a.data(), bytes);
  if (bytes > 0) std::memcpy(src_buf.data() + src_skew, b.data(), bytes);
  const std::vector<uint8_t> src_before = src_buf;
  ASSERT_TRUE(fn(op, dtype, dst_buf.data() + dst_skew, src_buf.data() + src_skew, bytes).ok());
  const size_t width = DTypeSize(dtype);
  for (size_t i = 0; i < count; ++i) {
    const std::string err = CheckElement(op, dtype, a.data() + i * width, b.data() + i * width,
                                         dst_buf.data() + dst_skew + i * width);
    ASSERT_EQ(err, "") << ReduceOpName(op) << " " << DTypeName(dtype) << " count " << count << " element " << i;
  }
  // Nothing outside dst's range was written, and src is unchanged.
  for (size_t i = 0; i < dst_skew; ++i) ASSERT_EQ(dst_buf[i], 0xa5) << "byte before dst";
  for (size_t i = dst_skew + bytes; i < dst_buf.size(); ++i) ASSERT_EQ(dst_buf[i], 0xa5) << "byte after dst";
  ASSERT_EQ(src_buf, src_before);
}

TEST(ReduceInto, EveryOpAndDTypeMatchesTheScalarReference) {
  for (const Path& path : kPaths) {
    uint64_t seed = 1;
    for (ReduceOp op : kOps) {
      for (DType dtype : kNumeric) {
        for (size_t count : {0u, 1u, 7u, 255u, 256u, 257u, 1023u, 1025u, 4099u}) {
          SCOPED_TRACE(testing::Message() << path.name << " " << ReduceOpName(op) << " " << DTypeName(dtype)
                                          << " x" << count);
          CheckRandom(path.fn, op, dtype, count, 0, 0, ++seed);
        }
      }
    }
  }
}

TEST(ReduceInto, UnalignedPointersWork) {
  for (const Path& path : kPaths) {
    uint64_t seed = 1000;
    for (ReduceOp op : kOps) {
      for (DType dtype : kNumeric) {
        SCOPED_TRACE(testing::Message() << path.name << " " << ReduceOpName(op) << " " << DTypeName(dtype));
        CheckRandom(path.fn, op, dtype, 1025, 1, 3, ++seed);
        CheckRandom(path.fn, op, dtype, 300, 5, 0, ++seed);
        CheckRandom(path.fn, op, dtype, 3, 7, 2, ++seed);
      }
    }
  }
}

template <typename T>
T ReduceOne(ReduceOp op, DType dtype, T a, T b, ReduceFn fn = &ReduceInto) {
  EXPECT_TRUE(fn(op, dtype, &a, &b, sizeof(T)).ok());
  return a;
}

TEST(ReduceInto, IntegersWrapAround) {
  constexpr int32_t kI32Max = std::numeric_limits<int32_t>::max();
  constexpr int32_t kI32Min = std::numeric_limits<int32_t>::min();
  constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
  constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(ReduceOne<int32_t>(ReduceOp::kSum, DType::kI32, kI32Max, 1), kI32Min);
  EXPECT_EQ(ReduceOne<int32_t>(ReduceOp::kSum, DType::kI32, kI32Min, -1), kI32Max);
  EXPECT_EQ(ReduceOne<int32_t>(ReduceOp::kProd, DType::kI32, 65536, 65536), 0);
  EXPECT_EQ(ReduceOne<int32_t>(ReduceOp::kProd, DType::kI32, kI32Min, -1), kI32Min);
  EXPECT_EQ(ReduceOne<int64_t>(ReduceOp::kSum, DType::kI64, kI64Max, 1), kI64Min);
  EXPECT_EQ(ReduceOne<int64_t>(ReduceOp::kProd, DType::kI64, int64_t{1} << 32, int64_t{1} << 32), 0);
  EXPECT_EQ(ReduceOne<int64_t>(ReduceOp::kProd, DType::kI64, kI64Max, 3), kI64Max - 2);   // 3*(2^63-1) mod 2^64
  EXPECT_EQ(ReduceOne<uint8_t>(ReduceOp::kSum, DType::kU8, 200, 100), 44);
  EXPECT_EQ(ReduceOne<uint8_t>(ReduceOp::kProd, DType::kU8, 16, 17), 16);   // 272 mod 256
  // min/max compare as signed for i32/i64, unsigned for u8.
  EXPECT_EQ(ReduceOne<int32_t>(ReduceOp::kMin, DType::kI32, -5, 3), -5);
  EXPECT_EQ(ReduceOne<int64_t>(ReduceOp::kMax, DType::kI64, kI64Min, -1), -1);
  EXPECT_EQ(ReduceOne<uint8_t>(ReduceOp::kMax, DType::kU8, 255, 1), 255);
}

TEST(ReduceInto, NaNPropagatesThroughMinAndMax) {
  const float fnan = std::numeric_limits<float>::quiet_NaN();
  const double dnan = std::numeric_limits<double>::quiet_NaN();
  for (ReduceOp op : kOps) {
    SCOPED_TRACE(ReduceOpName(op));
    EXPECT_TRUE(std::isnan(ReduceOne<float>(op, DType::kF32, fnan, 1.0f)));
    EXPECT_TRUE(std::isnan(ReduceOne<float>(op, DType::kF32, 1.0f, fnan)));
    EXPECT_TRUE(std::isnan(ReduceOne<double>(op, DType::kF64, dnan, -1.0)));
    EXPECT_TRUE(std::isnan(ReduceOne<double>(op, DType::kF64, -1.0, dnan)));
    for (DType half : {DType::kF16, DType::kBF16}) {
      for (const Path& path : kPaths) {
        SCOPED_TRACE(testing::Message() << path.name << " " << DTypeName(half));
        const uint16_t nan16 = half == DType::kF16 ? 0x7e00 : 0x7fc0;
        const uint16_t one = half == DType::kF16 ? 0x3c00 : 0x3f80;
        EXPECT_TRUE(std::isnan(Decode16(half, ReduceOne<uint16_t>(op, half, nan16, one, path.fn))));
        EXPECT_TRUE(std::isnan(Decode16(half, ReduceOne<uint16_t>(op, half, one, nan16, path.fn))));
        // A signalling NaN comes back as a NaN.
        const uint16_t snan = half == DType::kF16 ? 0x7c01 : 0x7f81;
        EXPECT_TRUE(std::isnan(Decode16(half, ReduceOne<uint16_t>(op, half, snan, one, path.fn))));
      }
    }
  }
  // Within a vector block: a NaN in one lane does not leak into its neighbours.
  std::vector<float> dst(300, 2.0f);
  std::vector<float> src(300, 3.0f);
  src[17] = fnan;
  ASSERT_TRUE(ReduceInto(ReduceOp::kMax, DType::kF32, dst.data(), src.data(), dst.size() * 4).ok());
  for (size_t i = 0; i < dst.size(); ++i) {
    if (i == 17) EXPECT_TRUE(std::isnan(dst[i]));
    else EXPECT_EQ(dst[i], 3.0f) << i;
  }
}

// Every non-NaN 16-bit pattern survives the f32 round trip: max(x, x) == x bit for bit.
TEST(ReduceInto, SixteenBitFloatsRoundTripExactly) {
  for (const Path& path : kPaths) {
    for (DType half : {DType::kF16, DType::kBF16}) {
      std::vector<uint16_t> dst(65536);
      for (size_t i = 0; i < dst.size(); ++i) dst[i] = static_cast<uint16_t>(i);
      const std::vector<uint16_t> src = dst;
      ASSERT_TRUE(path.fn(ReduceOp::kMax, half, dst.data(), src.data(), dst.size() * 2).ok());
      for (size_t i = 0; i < dst.size(); ++i) {
        if (std::isnan(Decode16(half, static_cast<uint16_t>(i)))) {
          EXPECT_TRUE(std::isnan(Decode16(half, dst[i]))) << path.name << " " << DTypeName(half) << " " << i;
        } else {
          ASSERT_EQ(dst[i], src[i]) << path.name << " " << DTypeName(half) << " pattern " << i;
        }
      }
    }
  }
}

bool IsNaN(DType dtype, const uint8_t* p) {
  switch (dtype) {
    case DType::kF32: return std::isnan(Load<float>(p));
    case DType::kF64: return std::isnan(Load<double>(p));
    case DType::kF16:
    case DType::kBF16: return std::isnan(Decode16(dtype, Load<uint16_t>(p)));
    default: return false;
  }
}

// The CPU-specific kernels (if this machine has them) give the portable kernels' bits, NaN
// results compared as NaN: random data for every op x dtype, and every f16 pattern against a
// spread of others (subnormal, tiny, one, largest, ...).
TEST(ReduceInto, TheCpuPathMatchesThePortablePathBitForBit) {
  if (!internal::ReduceUsesCpuKernels()) GTEST_SKIP() << "no CPU-specific kernels on this machine";
  std::mt19937_64 rng(77);
  for (ReduceOp op : kOps) {
    for (DType dtype : kNumeric) {
      const size_t count = 1031;
      const size_t width = DTypeSize(dtype);
      const std::vector<uint8_t> a = RandomElements(dtype, count, rng);
      const std::vector<uint8_t> b = RandomElements(dtype, count, rng);
      std::vector<uint8_t> fast = a;
      std::vector<uint8_t> portable = a;
      ASSERT_TRUE(ReduceInto(op, dtype, fast.data(), b.data(), a.size()).ok());
      ASSERT_TRUE(internal::ReduceIntoPortable(op, dtype, portable.data(), b.data(), a.size()).ok());
      for (size_t i = 0; i < count; ++i) {
        const uint8_t* f = fast.data() + i * width;
        const uint8_t* q = portable.data() + i * width;
        if (IsNaN(dtype, q) && IsNaN(dtype, f)) continue;
        ASSERT_EQ(std::memcmp(f, q, width), 0) << ReduceOpName(op) << " " << DTypeName(dtype) << " element " << i;
      }
    }
  }
  std::vector<uint16_t> a(65536);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(i);
  for (uint16_t other : {0x0000, 0x0001, 0x03ff, 0x3c00, 0xbc01, 0x7bff, 0x1400, 0x5a5a, 0xc000}) {
    const std::vector<uint16_t> b(a.size(), other);
    for (ReduceOp op : kOps) {
      std::vector<uint16_t> fast = a;
      std::vector<uint16_t> portable = a;
      ASSERT_TRUE(ReduceInto(op, DType::kF16, fast.data(), b.data(), a.size() * 2).ok());
      ASSERT_TRUE(internal::ReduceIntoPortable(op, DType::kF16, portable.data(), b.data(), a.size() * 2).ok());
      for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(DecodeF16(portable[i]))) {
          ASSERT_TRUE(std::isnan(DecodeF16(fast[i]))) << ReduceOpName(op) << " " << i << " with " << other;
        } else {
          ASSERT_EQ(fast[i], portable[i]) << ReduceOpName(op) << " " << i << " with " << other;
        }
      }
    }
  }
}

TEST(ReduceInto, SixteenBitFloatsRoundToNearestEven) {
  for (const Path& path : kPaths) {
    SCOPED_TRACE(path.name);
    auto one = [&](ReduceOp op, DType dtype, uint16_t a, uint16_t b) {
      return ReduceOne<uint16_t>(op, dtype, a, b, path.fn);
    };
    // bf16 has 8 significant bits: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1 (even).
    EXPECT_EQ(one(ReduceOp::kSum, DType::kBF16, 0x3f80, 0x3b80), 0x3f80);   // 1 + 2^-8
    EXPECT_EQ(one(ReduceOp::kSum, DType::kBF16, 0x3f81, 0x3b80), 0x3f82);   // (1+2^-7) + 2^-8
    EXPECT_EQ(one(ReduceOp::kSum, DType::kBF16, 0x3f80, 0x3b81), 0x3f81);   // past the tie: up
    // f16: 1 + 2^-11 -> 1 (even); (1 + 2^-10) + 2^-11 -> 1 + 2^-9.
    EXPECT_EQ(one(ReduceOp::kSum, DType::kF16, 0x3c00, 0x1000), 0x3c00);
    EXPECT_EQ(one(ReduceOp::kSum, DType::kF16, 0x3c01, 0x1000), 0x3c02);
    // f16 overflow: 65504 + 16 = 65520 is halfway to 65536 and rounds to Inf; 65504 + 8 does not.
    EXPECT_EQ(one(ReduceOp::kSum, DType::kF16, 0x7bff, 0x4c00), 0x7c00);
    EXPECT_EQ(one(ReduceOp::kSum, DType::kF16, 0x7bff, 0x4800), 0x7bff);
    EXPECT_EQ(one(ReduceOp::kProd, DType::kF16, 0xfbff, 0x4000), 0xfc00);   // -Inf
    // f16 subnormals: 2^-24 + 2^-24 = 2^-23 (exact); 2^-24 * 0.5 = 2^-25 ties to 0 (even).
    EXPECT_EQ(one(ReduceOp::kSum, DType::kF16, 0x0001, 0x0001), 0x0002);
    EXPECT_EQ(one(ReduceOp::kProd, DType::kF16, 0x0001, 0x3800), 0x0000);
    EXPECT_EQ(one(ReduceOp::kProd, DType::kF16, 0x0003, 0x3800), 0x0002);   // 1.5 -> 2
    // The smallest normal from two subnormals: 0x03ff + 0x0001 = 0x0400.
    EXPECT_EQ(one(ReduceOp::kSum, DType::kF16, 0x03ff, 0x0001), 0x0400);
  }
}

TEST(ReduceInto, BadInputIsRefusedAndDstIsUntouched) {
  float dst[4] = {1, 2, 3, 4};
  const float src[4] = {1, 1, 1, 1};
  absl::Status st = ReduceInto(ReduceOp::kSum, DType::kBytes, dst, src, sizeof(dst));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("bytes"), std::string::npos) << st;

  st = ReduceInto(ReduceOp::kSum, DType::kF32, dst, src, 6);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("6 bytes"), std::string::npos) << st;
  EXPECT_NE(st.message().find("f32 element size 4"), std::string::npos) << st;

  st = ReduceInto(static_cast<ReduceOp>(0), DType::kF32, dst, src, 4);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unknown reduce op 0"), std::string::npos) << st;
  EXPECT_EQ(ReduceInto(static_cast<ReduceOp>(5), DType::kF32, dst, src, 4).code(),
            absl::StatusCode::kInvalidArgument);
  st = ReduceInto(ReduceOp::kSum, static_cast<DType>(8), dst, src, 4);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unknown dtype 8"), std::string::npos) << st;

  EXPECT_EQ(ReduceInto(ReduceOp::kSum, DType::kF32, nullptr, src, 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReduceInto(ReduceOp::kSum, DType::kF32, dst, nullptr, 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ReduceInto(ReduceOp::kSum, DType::kF32, nullptr, nullptr, 0).ok());

  // Overlapping ranges (including dst == src) are refused; adjacent ones are fine.
  float buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(ReduceInto(ReduceOp::kSum, DType::kF32, buf, buf, 16).code(), absl::StatusCode::kInvalidArgument);
  st = ReduceInto(ReduceOp::kSum, DType::kF32, buf + 2, buf, 16);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("overlap"), std::string::npos) << st;
  EXPECT_TRUE(ReduceInto(ReduceOp::kSum, DType::kF32, buf + 4, buf, 16).ok());
  EXPECT_EQ(buf[4], 6.0f);
  EXPECT_EQ(buf[7], 12.0f);

  EXPECT_EQ(dst[0], 1.0f);   // every refused call left dst alone
  EXPECT_EQ(dst[3], 4.0f);
}

}  // namespace
}  // namespace ferry
