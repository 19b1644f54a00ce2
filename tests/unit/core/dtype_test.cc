// The dtype x reduce-op table (core/dtype.h) and the one metadata validation (core/object_meta.h).
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <string>

#include "core/object_meta.h"

namespace ferry {
namespace {

TEST(DType, EveryDTypeHasANameThatRoundTrips) {
  for (size_t i = 0; i < kNumDTypes; ++i) {
    const DType d = static_cast<DType>(i);
    ASSERT_TRUE(IsValidDType(d));
    EXPECT_GT(DTypeSize(d), 0u);
    const std::string name = DTypeName(d);
    ASSERT_NE(name, "?");
    ASSERT_TRUE(DTypeFromName(name).has_value()) << name;
    EXPECT_EQ(*DTypeFromName(name), d);
  }
  EXPECT_FALSE(IsValidDType(static_cast<DType>(kNumDTypes)));
  EXPECT_EQ(DTypeSize(static_cast<DType>(200)), 0u);
  EXPECT_STREQ(DTypeName(static_cast<DType>(200)), "?");
  EXPECT_EQ(DTypeFromName("F32"), DType::kF32);
  EXPECT_FALSE(DTypeFromName("float128").has_value());
}

TEST(DType, ReduceOpsApplyToNumericTypesOnly) {
  for (int op = 1; op <= kMaxReduceOp; ++op) {
    const ReduceOp r = static_cast<ReduceOp>(op);
    ASSERT_TRUE(IsValidReduceOp(r));
    EXPECT_EQ(ReduceOpFromName(ReduceOpName(r)), r);
    EXPECT_FALSE(DTypeSupports(DType::kBytes, r));
    for (size_t d = 1; d < kNumDTypes; ++d) EXPECT_TRUE(DTypeSupports(static_cast<DType>(d), r));
  }
  EXPECT_FALSE(IsValidReduceOp(static_cast<ReduceOp>(0)));
  EXPECT_FALSE(IsValidReduceOp(static_cast<ReduceOp>(kMaxReduceOp + 1)));
  EXPECT_FALSE(DTypeSupports(DType::kF32, static_cast<ReduceOp>(0)));
  EXPECT_FALSE(DTypeSupports(static_cast<DType>(99), ReduceOp::kSum));
  EXPECT_FALSE(ReduceOpFromName("avg").has_value());
}

TEST(ObjectMeta, DerivesTheCountAndChecksADeclaredOne) {
  EXPECT_EQ(*ValidateObjectMeta(16, static_cast<uint32_t>(DType::kF32), 0), 4u);
  EXPECT_EQ(*ValidateObjectMeta(16, static_cast<uint32_t>(DType::kF32), 4), 4u);
  EXPECT_EQ(*ValidateObjectMeta(0, static_cast<uint32_t>(DType::kF64), 0), 0u);
  EXPECT_EQ(*ValidateObjectMeta(7, static_cast<uint32_t>(DType::kBytes), 0), 7u);
}

TEST(ObjectMeta, RefusesWhatDoesNotAddUp) {
  absl::StatusOr<uint64_t> r = ValidateObjectMeta(10, static_cast<uint32_t>(DType::kF32), 0);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a multiple of the f32 element size 4"), std::string::npos) << r.status();
  r = ValidateObjectMeta(16, static_cast<uint32_t>(DType::kF32), 5);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("count 5"), std::string::npos) << r.status();
  r = ValidateObjectMeta(16, 8, 0);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("unknown dtype 8"), std::string::npos) << r.status();
  // 256 is kBytes once truncated to the enum's 8 bits: it must not pass as one.
  EXPECT_EQ(ValidateObjectMeta(16, 256, 0).status().code(), absl::StatusCode::kInvalidArgument);
  // A count whose byte size wraps 64 bits must not pass as matching.
  r = ValidateObjectMeta(8, static_cast<uint32_t>(DType::kI64), (uint64_t{1} << 61) + 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry
