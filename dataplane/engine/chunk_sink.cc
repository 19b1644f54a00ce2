#include "dataplane/engine/chunk_sink.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace ferry::dataplane {

absl::StatusOr<LocalSlice> CopySink::Destination(uint32_t k, uint64_t first, uint64_t len) {
  if (object_.length > std::numeric_limits<uint64_t>::max() - object_.offset) {
    return absl::OutOfRangeError(absl::StrCat("copy of ", PrintableName(ns_, key_), ": object range [",
                                              object_.offset, ", +", object_.length, ") wraps"));
  }
  if (first > object_.length || len > object_.length - first) {   // overflow-safe; names it only then
    return CheckRange(absl::StrCat("chunk ", k, " of ", PrintableName(ns_, key_)), object_.length, first, len);
  }
  return LocalSlice{object_.region, object_.offset + first, len};
}

absl::Status CopySink::Landed(uint32_t k) {
  store_->MarkChunk(ns_, key_, k);
  return absl::OkStatus();
}

}  // namespace ferry::dataplane
