// The placement verbs of the `ferry` command line (sdk/ferry_cli.cc): resources, acquire,
// release, leases, lost. They talk to ferry-coord's Placement service directly (--coord), not to
// ferryd, through include/ferry/placement.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ferry/placement.h"

namespace ferry::cli {

struct PlacementFlags {
  std::string coord = "127.0.0.1:7700";
  std::string holder = "ferry-cli";
  // acquire
  std::vector<std::string> bundles;  // "gpu=1,host_mem=1048576"
  std::string constraint = "none";   // none | same-node | different-nodes | same-label
  std::string label_key;
  bool spread = false;
  int32_t priority = 0;
  std::string timeout = "30s";
  std::string ttl = "1h";
  int count = 1;                     // > 1: that many such leases in one AcquireBatch
  // release
  std::vector<uint64_t> leases;      // several: one ReleaseBatch
  // leases
  bool mine = false;
  // lost
  std::string watch_for = "10s";
};

// Adds the five subcommands (each with --coord and --holder where it matters).
void AddPlacementCommands(CLI::App& app, PlacementFlags& f);
// True if `app` got one of them.
bool IsPlacementCommand(const CLI::App& app);
// Runs it. `unreachable` marks a failure to reach the coordinator (the CLI's exit 3).
[[nodiscard]] absl::Status RunPlacementCommand(const CLI::App& app, const PlacementFlags& f, bool json,
                                               const std::function<absl::Status(absl::Status)>& unreachable);

// "gpu=1,host_mem=4096" -> {gpu: 1, host_mem: 4096}. INVALID_ARGUMENT naming the bad part.
[[nodiscard]] absl::StatusOr<ResourceAmounts> ParseBundleArg(const std::string& text);

}  // namespace ferry::cli
