#include "core/object_meta.h"

#include "absl/strings/str_cat.h"
#include "core/dtype.h"

namespace ferry {

absl::StatusOr<uint64_t> ValidateObjectMeta(uint64_t size, uint32_t dtype, uint64_t count) {
  // Compared before the cast: DType is 8 bits wide, so 256 would pass as kBytes.
  if (dtype >= kNumDTypes) {
    return absl::InvalidArgumentError(absl::StrCat("unknown dtype ", dtype));
  }
  const DType d = static_cast<DType>(dtype);
  const uint64_t elem = DTypeSize(d);
  if (size % elem != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size ", size, " is not a multiple of the ", DTypeName(d), " element size ", elem));
  }
  const uint64_t derived = size / elem;
  if (count != 0 && count != derived) {
    return absl::InvalidArgumentError(
        absl::StrCat("count ", count, " x ", elem, " bytes does not match size ", size));
  }
  return derived;
}

}  // namespace ferry
