// HoldersFile: where ferry-coord records which holders have placement leases
// (--placement-holders FILE), so that after a restart it knows whose ReportLeases to wait for
// before it closes the rebuild window. One C-escaped holder per line; every write replaces the
// file whole (a temporary file, fsync, rename), so a crash leaves the old list or the new one.
//
// Not thread-safe: the owner serialises calls (PlacementService, under its lock).
#pragma once

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::control::placement {

class HoldersFile {
 public:
  explicit HoldersFile(std::string path = "") : path_(std::move(path)) {}

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // The holders listed; an absent file is an empty list. INTERNAL naming the file and strerror
  // for a file that cannot be read, DATA_LOSS for a line that is not a valid escaped holder.
  [[nodiscard]] absl::StatusOr<std::set<std::string>> Read() const;
  // Replaces the list. INTERNAL naming the file and strerror on failure (the old list stays).
  [[nodiscard]] absl::Status Write(const std::set<std::string>& holders) const;

 private:
  std::string path_;
};

}  // namespace ferry::control::placement
