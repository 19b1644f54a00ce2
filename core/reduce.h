// Reduction arithmetic on host memory: dst = op(dst, src), element by element, for every
// (ReduceOp, numeric DType) pair of the table in core/dtype.h. Used by the reduce sink
// (dataplane/engine/reduce_sink.h) on each chunk as it lands; GPU objects use CUDA kernels
// (cuda/) with the same semantics.
//
// Semantics, per dtype:
// - i32, i64, u8: sum and prod wrap around modulo 2^bits, as unsigned C arithmetic does
//   (signed overflow is not undefined here); min and max compare as signed (i32, i64) or
//   unsigned (u8).
// - f32, f64: IEEE arithmetic in the type itself, round-to-nearest-even (the default FP
//   environment). min and max propagate NaN: if either operand is NaN the result is NaN
//   (dst's NaN when both are). Between -0 and +0 either may be returned.
// - f16, bf16: each element is widened to f32 (exactly), combined in f32 and rounded back once
//   to the type with round-to-nearest-even, so one ReduceInto call makes one f32 rounding plus
//   one 16-bit rounding per element: the result is within 1 ulp of the 16-bit type of the exact
//   result (0.5 ulp whenever the f32 result is exact, as it is for every product and for sums of
//   operands within 2^13 of each other's magnitude). A reduce over a tree rounds once per
//   combining node, so n inputs accumulate at most n-1 such roundings. Overflow gives +-Inf.
//   A NaN result is the type's quiet NaN (sign kept, payload: bf16 keeps the top bits, f16
//   becomes 0x7e00 | sign).
// Kernels: the same portable loops compiled twice, for the baseline ISA and (x86-64) for AVX2
// + F16C, whose f16 kernels use the hardware conversions; chosen once at run time from the CPU.
// Both give the same result bits (except NaN payloads).
// Alignment: none is required; dst and src may lie at any byte address (a chunk at an odd
// offset of a u8 object lands at an odd address).
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "ferry/object.h"

namespace ferry {

// dst[i] = op(dst[i], src[i]) for the bytes / DTypeSize(dtype) elements of `dtype` at dst and
// src. Errors (INVALID_ARGUMENT, dst untouched): an op or dtype outside the enums (a value read
// from the wire), kBytes (no arithmetic), `bytes` not a multiple of the dtype's size (naming
// both), a null pointer with bytes > 0, or ranges that overlap. bytes == 0 is a no-op.
// Thread-safe (touches only dst and src); does not allocate.
[[nodiscard]] absl::Status ReduceInto(ReduceOp op, DType dtype, void* dst, const void* src, size_t bytes);

namespace internal {
// ReduceInto without CPU-specific kernels (today: AVX2 + F16C on x86-64), i.e. the portable
// loops a CPU without them runs. Same contract and the same result bits, except NaN payloads.
// For tests (both paths are checked on a machine that has the fast one) and benchmarks.
[[nodiscard]] absl::Status ReduceIntoPortable(ReduceOp op, DType dtype, void* dst, const void* src, size_t bytes);
// Whether ReduceInto runs CPU-specific kernels on this machine.
bool ReduceUsesCpuKernels();
}  // namespace internal

}  // namespace ferry
