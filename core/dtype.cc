// The dtype x reduce-op table (core/dtype.h) and the helpers include/ferry/object.h declares.
#include "core/dtype.h"

#include "ferry/object.h"

#include <array>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
  bool numeric;   // reduce ops apply
};

// Indexed by the enum value, which is also the proto DType number.
constexpr std::array<DTypeEntry, kNumDTypes> kDTypes = {{
    {DType::kBytes, "bytes", 1, false},
    {DType::kF32, "f32", 4, true},
    {DType::kF64, "f64", 8, true},
    {DType::kF16, "f16", 2, true},
    {DType::kBF16, "bf16", 2, true},
    {DType::kI32, "i32", 4, true},
    {DType::kI64, "i64", 8, true},
    {DType::kU8, "u8", 1, true},
}};

static_assert(kDTypes.size() == kNumDTypes);

struct ReduceOpEntry {
  ReduceOp op;
  const char* name;
};
// Indexed by the enum value - 1.
constexpr std::array<ReduceOpEntry, kMaxReduceOp> kReduceOps = {{
    {ReduceOp::kSum, "sum"},
    {ReduceOp::kProd, "prod"},
    {ReduceOp::kMin, "min"},
    {ReduceOp::kMax, "max"},
}};

constexpr bool TablesAreIndexedByValue() {
  for (size_t i = 0; i < kDTypes.size(); ++i) {
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  }
  for (size_t i = 0; i < kReduceOps.size(); ++i) {
    if (static_cast<size_t>(kReduceOps[i].op) != i + 1) return false;
  }
  return true;
}
static_assert(TablesAreIndexedByValue(), "the dtype and reduce-op tables must be indexed by enum value");

const DTypeEntry* Find(DType dtype) {
  const size_t i = static_cast<size_t>(dtype);
  return i < kDTypes.size() ? &kDTypes[i] : nullptr;
}

const ReduceOpEntry* Find(ReduceOp op) {
  const size_t i = static_cast<size_t>(op);
  return i >= 1 && i <= kReduceOps.size() ? &kReduceOps[i - 1] : nullptr;
}

}  // namespace

bool IsValidDType(DType dtype) { return Find(dtype) != nullptr; }
bool IsValidReduceOp(ReduceOp op) { return Find(op) != nullptr; }

absl::Status CheckReduceArithmetic(int64_t op, int64_t dtype) {
  if (op < 1 || op > kMaxReduceOp || !IsValidReduceOp(static_cast<ReduceOp>(op))) {
    return absl::InvalidArgumentError(absl::StrCat("unknown op ", op));
  }
  if (dtype < 0 || dtype >= static_cast<int64_t>(kNumDTypes) || !IsValidDType(static_cast<DType>(dtype))) {
    return absl::InvalidArgumentError(absl::StrCat("unknown dtype ", dtype));
  }
  const auto o = static_cast<ReduceOp>(op);
  const auto d = static_cast<DType>(dtype);
  if (!DTypeSupports(d, o)) {
    return absl::InvalidArgumentError(absl::StrCat("op ", ReduceOpName(o), " is not defined on dtype ", DTypeName(d)));
  }
  return absl::OkStatus();
}

bool DTypeSupports(DType dtype, ReduceOp op) {
  const DTypeEntry* e = Find(dtype);
  return e != nullptr && e->numeric && Find(op) != nullptr;
}

const char* ReduceOpName(ReduceOp op) {
  const ReduceOpEntry* e = Find(op);
  return e ? e->name : "?";
}

std::optional<ReduceOp> ReduceOpFromName(std::string_view name) {
  std::string lower(name);
  absl::AsciiStrToLower(&lower);
  for (const ReduceOpEntry& e : kReduceOps) {
    if (lower == e.name) return e.op;
  }
  return std::nullopt;
}

size_t DTypeSize(DType dtype) {
  const DTypeEntry* e = Find(dtype);
  return e ? e->size : 0;
}

const char* DTypeName(DType dtype) {
  const DTypeEntry* e = Find(dtype);
  return e ? e->name : "?";
}

std::optional<DType> DTypeFromName(std::string_view name) {
  std::string lower(name);
  absl::AsciiStrToLower(&lower);
  for (const DTypeEntry& e : kDTypes) {
    if (lower == e.name) return e.dtype;
  }
  return std::nullopt;
}

}  // namespace ferry
