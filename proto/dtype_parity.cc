// Compile-time check that proto's DType / ReduceOp numbers are the public enums' numbers
// (include/ferry/object.h), so the one table in core/dtype.cc serves both and converting is
// a cast. A new dtype or op must be added to both enums and to the table.
#include "core/dtype.h"
#include "ferry/object.h"
#include "proto/common.pb.h"

namespace ferry::proto {
namespace {

template <typename A, typename B>
constexpr bool Same(A a, B b) {
  return static_cast<int>(a) == static_cast<int>(b);
}

static_assert(Same(DType::BYTES, ferry::DType::kBytes));
static_assert(Same(DType::F32, ferry::DType::kF32));
static_assert(Same(DType::F64, ferry::DType::kF64));
static_assert(Same(DType::F16, ferry::DType::kF16));
static_assert(Same(DType::BF16, ferry::DType::kBF16));
static_assert(Same(DType::I32, ferry::DType::kI32));
static_assert(Same(DType::I64, ferry::DType::kI64));
static_assert(Same(DType::U8, ferry::DType::kU8));
static_assert(DType_ARRAYSIZE == static_cast<int>(ferry::kNumDTypes), "a proto DType is missing from core/dtype.h");
static_assert(Same(ReduceOp::SUM, ferry::ReduceOp::kSum));
static_assert(Same(ReduceOp::PROD, ferry::ReduceOp::kProd));
static_assert(Same(ReduceOp::MIN, ferry::ReduceOp::kMin));
static_assert(Same(ReduceOp::MAX, ferry::ReduceOp::kMax));
static_assert(ReduceOp_MAX == ferry::kMaxReduceOp, "a proto ReduceOp is missing from core/dtype.h");

}  // namespace
}  // namespace ferry::proto
