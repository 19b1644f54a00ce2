// The `ferry reduce` and `ferry allreduce` verbs (Client::Reduce / Client::AllReduce).
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

struct ReduceFlags {
  std::string result;
  std::vector<std::string> inputs;   // keys, in the namespace of --ns
  std::string op = "sum";
  std::string dtype = "f32";
  uint32_t num_objects = 0;          // 0: every input
  std::string timeout = "60s";
  std::string root;                  // the node that builds the result; empty: the planner's choice
};

void AddReduceCommands(CLI::App& app, ReduceFlags& f);
bool IsReduceCommand(const CLI::App& app);
// Runs the verb given: connects with `connect`, prints a table (or JSON), and fails (exit 1)
// when the reduce fails or, for allreduce, a participant lacks the result.
[[nodiscard]] absl::Status RunReduceCommand(const CLI::App& app, const ReduceFlags& f, const std::string& ns, bool json,
                                            const std::function<absl::StatusOr<std::unique_ptr<Client>>()>& connect);

}  // namespace ferry::cli
