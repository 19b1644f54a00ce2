// The one validation of a batch's object names (a model version: many objects in one call),
// used by the SDK, ferryd and the coordinator alike so that they refuse the same batches with
// the same messages.
#pragma once

#include <cstddef>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace ferry {

// Most objects one batch may name.
inline constexpr size_t kMaxBatchEntries = 100000;

// (namespace, key) of entry i.
using BatchNameAt = absl::FunctionRef<std::pair<absl::string_view, absl::string_view>(size_t)>;

// OK if the batch names 1..kMaxBatchEntries valid, distinct objects of one namespace.
// INVALID_ARGUMENT otherwise, naming the entry (its index and name) and the problem: "entry 3
// (ns/key): key is empty", "entries 2 and 7 both name ns/key", "entry 5 is in namespace b,
// entry 0 in a: a batch is one namespace".
[[nodiscard]] absl::Status ValidateBatchNames(size_t count, BatchNameAt name_at);

}  // namespace ferry
