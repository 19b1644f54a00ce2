#include "core/batch.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace ferry {

absl::Status ValidateBatchNames(size_t count, BatchNameAt name_at) {
  if (count == 0) return absl::InvalidArgumentError("the batch names no objects");
  if (count > kMaxBatchEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("the batch names ", count, " objects; at most ", kMaxBatchEntries, " are allowed"));
  }
  const absl::string_view ns0 = name_at(0).first;
  absl::flat_hash_map<absl::string_view, size_t> seen;
  seen.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const auto [ns, key] = name_at(i);
    if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("entry ", i, ": ", s.message()));
    }
    if (ns != ns0) {
      return absl::InvalidArgumentError(absl::StrCat("entry ", i, " (", PrintableName(ns, key), ") is in namespace ",
                                                     ns, ", entry 0 in ", ns0, ": a batch is one namespace"));
    }
    auto [it, fresh] = seen.emplace(key, i);
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat("entries ", it->second, " and ", i, " both name ",
                                                     PrintableName(ns, key)));
    }
  }
  return absl::OkStatus();
}

}  // namespace ferry
