// Value-type helpers declared in include/ferry/object.h.
#include "ferry/object.h"

#include <array>
#include <string>

#include "absl/strings/ascii.h"

namespace ferry {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

// Indexed by the enum value, which is also the proto DType number.
constexpr std::array<DTypeEntry, 8> kDTypes = {{
    {DType::kBytes, "bytes", 1},
    {DType::kF32, "f32", 4},
    {DType::kF64, "f64", 8},
    {DType::kF16, "f16", 2},
    {DType::kBF16, "bf16", 2},
    {DType::kI32, "i32", 4},
    {DType::kI64, "i64", 8},
    {DType::kU8, "u8", 1},
}};

const DTypeEntry* Find(DType dtype) {
  const size_t i = static_cast<size_t>(dtype);
  return i < kDTypes.size() ? &kDTypes[i] : nullptr;
}

}  // namespace

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
