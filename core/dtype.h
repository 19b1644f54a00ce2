// The one dtype x reduce-op table. The enums themselves are public (include/ferry/object.h);
// proto/dtype_parity.cc checks at compile time that proto's DType and ReduceOp use the same
// numbers, so converting between them is a cast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "ferry/object.h"

namespace ferry {

inline constexpr size_t kNumDTypes = 8;     // kBytes .. kU8
inline constexpr int kMaxReduceOp = 4;      // kSum .. kMax (0 is not an op)

// Whether `dtype` is one of the enum's values (a value read from the wire may not be).
bool IsValidDType(DType dtype);
bool IsValidReduceOp(ReduceOp op);

// Whether `op` is defined on `dtype`: every op on every numeric type; none on kBytes (raw
// bytes have no arithmetic).
bool DTypeSupports(DType dtype, ReduceOp op);

// Whether `op` and `dtype` as read from the wire (any integer; the proto enums) name an op and
// a dtype it is defined on, checked before any cast to the uint8_t enums. INVALID_ARGUMENT
// "unknown op N", "unknown dtype N" or "op sum is not defined on dtype bytes"; else OK.
[[nodiscard]] absl::Status CheckReduceArithmetic(int64_t op, int64_t dtype);

// "sum", "prod", "min", "max" ("?" outside the enum).
const char* ReduceOpName(ReduceOp op);
// Inverse of ReduceOpName, case-insensitive; nullopt for an unknown name.
std::optional<ReduceOp> ReduceOpFromName(std::string_view name);

}  // namespace ferry
