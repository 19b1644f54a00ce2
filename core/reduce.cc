// ReduceInto (core/reduce.h): one kernel per (op, dtype), all instantiated from one table.
//
// Why the loops look the way they do:
// - GCC 12 at -O2 vectorises with the "very-cheap" cost model: only a loop whose trip count is
//   known to be a multiple of the vector width, with no runtime alias check. So every kernel
//   runs over blocks of kBlock elements (a compile-time count) between __restrict pointers,
//   and the last partial block is copied into zero-padded stack arrays and run through the
//   same block loop (the padding lanes are computed and thrown away).
// - Elements are loaded and stored with memcpy (folded into plain unaligned vector loads), so
//   no alignment is assumed: chunk offsets are multiples of the chunk size, not of the dtype.
// - Signed integer sum/prod run on the unsigned type of the same width (wrap-around, no UB).
// - f16/bf16: each element is widened to f32, combined, and narrowed with round-to-nearest-even
//   in one loop of branch-free integer and float operations (portable; no F16C needed).
// - The block loops are always_inline and instantiated twice from the one table: baseline
//   (x86-64: SSE2) and, on x86-64, inside target("avx2,f16c") entry points that run when the
//   CPU has both (checked once); there f16 uses vcvtph2ps/vcvtps2ph. Same result bits.
//
// Compiler output checked (objdump -d of reduce.cc.o at -O2; -fopt-info-vec-missed for what
// stayed scalar):
//   GCC 12.2 baseline: f32 sum addps, f64 sum addpd, prod mulps/mulpd, i32 sum paddd, i64 sum
//   paddq, u8 sum paddb, u8 min/max pminub/pmaxub, i32 min/max pcmpgtd + pand/pandn/por,
//   f32/f64 min/max minps/maxps/minpd/maxpd + cmpneqps/pd blends for the NaN rule; bf16/f16:
//   punpcklwd/punpckhwd widening, pslld/paddd/psrld/pcmpgtd rounding, addps/mulps between.
//   Scalar in the baseline only: i64 min/max and i64 prod (SSE2 has no pcmpgtq, no 64-bit
//   multiply). AVX2 entry points: the same with ymm registers (vaddps, vpaddd, vpcmpgtq,
//   vpmovzxwd/vpackusdw for bf16), f16 vcvtph2ps/vcvtps2ph.
//   clang 16 (-O2): the same packed arithmetic (addps, addpd, mulps, paddd, paddq, paddb,
//   pminub, pcmpgtd blends); its f32/f64 min/max are cmpltps/cmpunordps (pd) blends.
// Measured with ferry-reduce-bench (perf/reduce_bench; this 2-core shared VM, AMD EPYC with
// AVX2, other builds running; 16 MiB dst and src, median of 20 calls; bytes of dst per second):
//   AVX2: f32 sum 4.8-5.3 GB/s, bf16 sum 3.3-4.0, f16 sum 3.9-4.8, f64 sum ~5.0.
//   baseline (--portable): f32 sum ~5.5, bf16 sum ~2.3, f16 sum ~0.8 (SSE2 has no cheap
//   32-to-16-bit pack; the f16 narrowing is many integer ops).
#include "core/reduce.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FERRY_REDUCE_X86 1   // AVX2 + F16C kernels, chosen at run time when the CPU has both
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace ferry {
namespace {

constexpr size_t kBlock = 256;   // elements per block; 2 KiB of f64, fits L1 with its operand

// ---- ops: Apply(a, b) is op(dst, src) -------------------------------------------------------
struct Sum {
  static constexpr bool kWraps = true;
  template <typename T>
  static T Apply(T a, T b) { return static_cast<T>(a + b); }
};
struct Prod {
  static constexpr bool kWraps = true;
  template <typename T>
  static T Apply(T a, T b) { return static_cast<T>(a * b); }
};
// NaN propagates: a NaN src makes the comparison false and is returned; a NaN dst is kept by
// the second select (`a != a` only for NaN; for integers it folds away). Written as two
// selects: GCC maps the first to minps/minpd (or maxps/maxpd) and vectorises both, where a
// single `(a < b || a != a) ? a : b` stayed scalar for f64.
struct Min {
  static constexpr bool kWraps = false;
  template <typename T>
  static T Apply(T a, T b) {
    const T r = a < b ? a : b;   // b when unordered
    return a != a ? a : r;
  }
};
struct Max {
  static constexpr bool kWraps = false;
  template <typename T>
  static T Apply(T a, T b) {
    const T r = a > b ? a : b;
    return a != a ? a : r;
  }
};

// The type an integer op computes in: unsigned for wrapping ops, the stored type otherwise.
template <typename T, typename Op>
using IntCompute = std::conditional_t<Op::kWraps, std::make_unsigned_t<T>, T>;

template <typename To, typename From>
To Bits(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof(to));
  return to;
}

// cond ? a : b as a bit mask. A ternary whose operands come from float arithmetic is turned
// into a branch by GCC (it may not speculate an FP operation under -ftrapping-math), which
// stops the loop from vectorising; the masks keep both operands computed unconditionally.
inline uint32_t Select(bool cond, uint32_t a, uint32_t b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(cond);
  return (a & mask) | (b & ~mask);
}

// ---- 16-bit float codecs: exact widening, round-to-nearest-even narrowing -------------------
struct BF16 {
  static float ToFloat(uint16_t h) { return Bits<float>(static_cast<uint32_t>(h) << 16); }
  static uint16_t FromFloat(float f) {
    const uint32_t x = Bits<uint32_t>(f);
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;   // ties to even
    const uint32_t quiet_nan = (x >> 16) | 0x40u;
    const bool nan = (x & 0x7fffffffu) > 0x7f800000u;
    return static_cast<uint16_t>(nan ? quiet_nan : rounded);
  }
};

struct F16 {
  static float ToFloat(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t magnitude = static_cast<uint32_t>(h & 0x7fffu) << 13;   // exponent+mantissa
    // Rebias by scaling: 2^112 = 2^(127-15); also normalises f16 subnormals exactly.
    const uint32_t finite = Bits<uint32_t>(Bits<float>(magnitude) * 0x1p112f);
    const uint32_t special = magnitude | 0x7f800000u;   // Inf / NaN keep their mantissa
    return Bits<float>(sign | Select((h & 0x7c00u) == 0x7c00u, special, finite));
  }
  static uint16_t FromFloat(float f) {
    const uint32_t x = Bits<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t a = x & 0x7fffffffu;
    // Normal results: rebias the exponent, round the 13 dropped bits to nearest even. A carry
    // out of the mantissa bumps the exponent, up to 0x7c00 (Inf) for |f| >= 65520.
    const uint32_t normal = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    // Subnormal results (|f| < 2^-14): adding 0.5 leaves the f16 subnormal mantissa in the low
    // bits, rounded by the FPU in round-to-nearest-even.
    const uint32_t subnormal = Bits<uint32_t>(Bits<float>(a) + 0.5f) - Bits<uint32_t>(0.5f);
    const uint32_t big = Select(a > 0x7f800000u, 0x7e00u, 0x7c00u);   // NaN : overflow to Inf
    const uint32_t h = Select(a >= 0x47800000u, big, Select(a < 0x38800000u, subnormal, normal));
    return static_cast<uint16_t>(sign | h);
  }
};

// ---- block kernels: exactly kBlock elements between non-overlapping byte ranges -------------
// Always inlined, so that each kernel entry point below (baseline, or compiled for AVX2)
// generates its own code for the loops.
#define FERRY_REDUCE_INLINE inline __attribute__((always_inline))

template <typename T, typename Op>
FERRY_REDUCE_INLINE void NativeBlock(uint8_t* __restrict dst, const uint8_t* __restrict src) {
  for (size_t i = 0; i < kBlock; ++i) {
    T a;
    T b;
    std::memcpy(&a, dst + i * sizeof(T), sizeof(T));
    std::memcpy(&b, src + i * sizeof(T), sizeof(T));
    a = Op::Apply(a, b);
    std::memcpy(dst + i * sizeof(T), &a, sizeof(T));
  }
}

template <typename Codec, typename Op>
FERRY_REDUCE_INLINE void HalfBlock(uint8_t* __restrict dst, const uint8_t* __restrict src) {
  for (size_t i = 0; i < kBlock; ++i) {
    uint16_t a;
    uint16_t b;
    std::memcpy(&a, dst + 2 * i, 2);
    std::memcpy(&b, src + 2 * i, 2);
    a = Codec::FromFloat(Op::Apply(Codec::ToFloat(a), Codec::ToFloat(b)));
    std::memcpy(dst + 2 * i, &a, 2);
  }
}

#ifdef FERRY_REDUCE_X86
// f16 with F16C: vcvtph2ps widens 8 elements exactly, vcvtps2ph narrows them with
// round-to-nearest-even (by immediate, whatever MXCSR says), so the results equal the portable
// codec's bit for bit except for NaN payloads. The combine between them is the same Op::Apply.
// Not always_inline (GCC refuses to force it into the target-less RunBlocks template); one call
// per block costs nothing.
template <typename Op>
__attribute__((target("avx2,f16c"))) void F16BlockF16C(uint8_t* __restrict dst, const uint8_t* __restrict src) {
  alignas(32) float a[kBlock];
  alignas(32) float b[kBlock];
  for (size_t i = 0; i < kBlock; i += 8) {
    _mm256_store_ps(a + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(dst + 2 * i))));
    _mm256_store_ps(b + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  }
  for (size_t i = 0; i < kBlock; ++i) a[i] = Op::Apply(a[i], b[i]);
  for (size_t i = 0; i < kBlock; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i),
                     _mm256_cvtps_ph(_mm256_load_ps(a + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

// Checked once: the AVX2 kernels run only where the CPU has AVX2 and F16C. AVX2 by the
// compiler's builtin (which also checks that the OS saves the ymm state); F16C by CPUID leaf 1,
// ECX bit 29 (clang 16's __builtin_cpu_supports does not know "f16c").
bool CpuHasAvx2F16C() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
    return f16c && __builtin_cpu_supports("avx2");
  }();
  return has;
}
#endif

using BlockFn = void (*)(uint8_t* __restrict, const uint8_t* __restrict);

// Whole blocks in place; the tail through zero-padded stack copies of both operands.
template <size_t kWidth, BlockFn kBlockFn>
FERRY_REDUCE_INLINE void RunBlocks(uint8_t* dst, const uint8_t* src, size_t count) {
  constexpr size_t kBlockBytes = kBlock * kWidth;
  size_t i = 0;
  for (; i + kBlock <= count; i += kBlock) kBlockFn(dst + i * kWidth, src + i * kWidth);
  if (i == count) return;
  alignas(64) uint8_t d[kBlockBytes] = {};
  alignas(64) uint8_t s[kBlockBytes] = {};
  const size_t tail = (count - i) * kWidth;
  std::memcpy(d, dst + i * kWidth, tail);
  std::memcpy(s, src + i * kWidth, tail);
  kBlockFn(d, s);
  std::memcpy(dst + i * kWidth, d, tail);
}

// ---- kernel entry points and the one instantiation table -----------------------------------
using Kernel = void (*)(uint8_t* dst, const uint8_t* src, size_t count);
enum class Isa { kBaseline, kAvx2 };   // kAvx2: AVX2 + F16C, x86-64 only

template <size_t kWidth, BlockFn kBlockFn>
void BaselineKernel(uint8_t* dst, const uint8_t* src, size_t count) {
  RunBlocks<kWidth, kBlockFn>(dst, src, count);
}
#ifdef FERRY_REDUCE_X86
template <size_t kWidth, BlockFn kBlockFn>
__attribute__((target("avx2,f16c"))) void Avx2Kernel(uint8_t* dst, const uint8_t* src, size_t count) {
  RunBlocks<kWidth, kBlockFn>(dst, src, count);
}
#endif

template <Isa kIsa, size_t kWidth, BlockFn kBlockFn>
constexpr Kernel KernelOf() {
#ifdef FERRY_REDUCE_X86
  if constexpr (kIsa == Isa::kAvx2) return &Avx2Kernel<kWidth, kBlockFn>;
#endif
  return &BaselineKernel<kWidth, kBlockFn>;
}

template <typename Op, Isa kIsa>
constexpr BlockFn F16Block() {
#ifdef FERRY_REDUCE_X86
  if constexpr (kIsa == Isa::kAvx2) return &F16BlockF16C<Op>;
#endif
  return &HalfBlock<F16, Op>;
}

// One row per op, one column per DType (indexed by its value).
template <typename Op, Isa kIsa>
constexpr std::array<Kernel, kNumDTypes> KernelsFor() {
  return {{
      nullptr,                                                            // kBytes: no arithmetic
      KernelOf<kIsa, 4, &NativeBlock<float, Op>>(),                       // kF32
      KernelOf<kIsa, 8, &NativeBlock<double, Op>>(),                      // kF64
      KernelOf<kIsa, 2, F16Block<Op, kIsa>()>(),                          // kF16
      KernelOf<kIsa, 2, &HalfBlock<BF16, Op>>(),                          // kBF16
      KernelOf<kIsa, 4, &NativeBlock<IntCompute<int32_t, Op>, Op>>(),     // kI32
      KernelOf<kIsa, 8, &NativeBlock<IntCompute<int64_t, Op>, Op>>(),     // kI64
      KernelOf<kIsa, 1, &NativeBlock<uint8_t, Op>>(),                     // kU8
  }};
}
// Indexed by [ReduceOp value - 1][DType value].
using KernelTable = std::array<std::array<Kernel, kNumDTypes>, kMaxReduceOp>;
template <Isa kIsa>
constexpr KernelTable MakeTable() {
  return {{KernelsFor<Sum, kIsa>(), KernelsFor<Prod, kIsa>(), KernelsFor<Min, kIsa>(), KernelsFor<Max, kIsa>()}};
}
constexpr KernelTable kBaselineKernels = MakeTable<Isa::kBaseline>();
#ifdef FERRY_REDUCE_X86
constexpr KernelTable kAvx2Kernels = MakeTable<Isa::kAvx2>();
#endif
static_assert(static_cast<int>(ReduceOp::kSum) == 1 && static_cast<int>(ReduceOp::kMax) == kMaxReduceOp);
static_assert(static_cast<size_t>(DType::kU8) + 1 == kNumDTypes);

const KernelTable& Kernels(bool portable) {
#ifdef FERRY_REDUCE_X86
  if (!portable && CpuHasAvx2F16C()) return kAvx2Kernels;
#endif
  return kBaselineKernels;
}

absl::Status CheckArgs(ReduceOp op, DType dtype, const void* dst, const void* src, size_t bytes) {
  if (!IsValidReduceOp(op)) {
    return absl::InvalidArgumentError(absl::StrCat("ReduceInto: unknown reduce op ", static_cast<int>(op)));
  }
  if (!IsValidDType(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("ReduceInto: unknown dtype ", static_cast<int>(dtype)));
  }
  // Built only on an error path: a valid call does not allocate.
  auto what = [&] { return absl::StrCat("ReduceInto(", ReduceOpName(op), ", ", DTypeName(dtype), ")"); };
  if (!DTypeSupports(dtype, op)) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": dtype ", DTypeName(dtype), " has no arithmetic"));
  }
  const size_t width = DTypeSize(dtype);
  if (bytes % width != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": ", bytes, " bytes is not a multiple of the ",
                                                   DTypeName(dtype), " element size ", width));
  }
  if (bytes == 0) return absl::OkStatus();
  if (dst == nullptr || src == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": null ", dst == nullptr ? "dst" : "src", " for ",
                                                   bytes, " bytes"));
  }
  const auto d = reinterpret_cast<uintptr_t>(dst);
  const auto s = reinterpret_cast<uintptr_t>(src);
  if (d < s + bytes && s < d + bytes) {   // no range of `bytes` bytes wraps: both are live objects
    return absl::InvalidArgumentError(absl::StrCat(what(), ": dst and src overlap (", bytes, " bytes at ",
                                                   absl::Hex(d), " and ", absl::Hex(s), ")"));
  }
  return absl::OkStatus();
}

absl::Status Reduce(bool portable, ReduceOp op, DType dtype, void* dst, const void* src, size_t bytes) {
  if (absl::Status st = CheckArgs(op, dtype, dst, src, bytes); !st.ok()) return st;
  if (bytes == 0) return absl::OkStatus();
  const Kernel kernel = Kernels(portable)[static_cast<size_t>(op) - 1][static_cast<size_t>(dtype)];
  kernel(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), bytes / DTypeSize(dtype));
  return absl::OkStatus();
}

}  // namespace

absl::Status ReduceInto(ReduceOp op, DType dtype, void* dst, const void* src, size_t bytes) {
  return Reduce(false, op, dtype, dst, src, bytes);
}

namespace internal {

absl::Status ReduceIntoPortable(ReduceOp op, DType dtype, void* dst, const void* src, size_t bytes) {
  return Reduce(true, op, dtype, dst, src, bytes);
}

bool ReduceUsesCpuKernels() {
#ifdef FERRY_REDUCE_X86
  return CpuHasAvx2F16C();
#else
  return false;
#endif
}

}  // namespace internal

}  // namespace ferry
