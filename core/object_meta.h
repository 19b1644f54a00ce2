// An object's metadata (size, dtype, element count) and its one validation, used by the SDK
// before it sends a Create, by ferryd when it receives one and by the coordinator when a node
// publishes. Proto-free: callers convert their message fields.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "ferry/object.h"

namespace ferry {

// The element count of an object of `size` bytes of `dtype` (a raw wire value), given the
// `count` its creator declared (0: derive it). INVALID_ARGUMENT naming the problem when the
// dtype is unknown, the size is not a whole number of elements, or the declared count does
// not match the size.
[[nodiscard]] absl::StatusOr<uint64_t> ValidateObjectMeta(uint64_t size, uint32_t dtype, uint64_t count);

}  // namespace ferry
