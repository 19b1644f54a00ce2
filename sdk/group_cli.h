// The `ferry group` verbs: create, delete, list, and run a collective on a static group
// (Client::CreateGroup / DeleteGroup / ListGroups / GroupCollective).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ferry/client.h"

namespace ferry::cli {

struct GroupFlags {
  std::string name;
  std::vector<std::string> nodes;    // create: member node names
  uint64_t lease = 0;                // create: ... or the nodes of this placement lease
  std::string holder;                // of the lease
  std::string kind;                  // run: allreduce, reduce-scatter, allgather, broadcast, reduce
  std::string result;
  std::vector<std::string> inputs;   // run: keys in rank order, in the namespace of --ns
  std::string op = "sum";
  std::string dtype = "f32";
  uint32_t root = 0;
  std::string timeout = "60s";
  bool fallback = false;
};

void AddGroupCommands(CLI::App& app, GroupFlags& f);
bool IsGroupCommand(const CLI::App& app);
// Runs the verb given: connects with `connect`, prints a table (or JSON).
[[nodiscard]] absl::Status RunGroupCommand(const CLI::App& app, const GroupFlags& f, const std::string& ns, bool json,
                                           const std::function<absl::StatusOr<std::unique_ptr<Client>>()>& connect);

}  // namespace ferry::cli
