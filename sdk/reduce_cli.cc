#include "sdk/reduce_cli.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/dtype.h"
#include "core/names.h"
#include "common/status_macros.h"
#include "sdk/cli_util.h"

namespace ferry::cli {
namespace {

using json = nlohmann::json;

void AddVerb(CLI::App& app, const char* name, const char* what, ReduceFlags& f) {
  CLI::App* cmd = app.add_subcommand(name, what);
  cmd->add_option("RESULT", f.result, "key of the new result object")->required();
  cmd->add_option("INPUTS", f.inputs, "keys of the inputs (one per node; they may be created later)")->required();
  cmd->add_option("--op", f.op, "sum, prod, min or max")->capture_default_str();
  cmd->add_option("--dtype", f.dtype, "element type: f32, f64, f16, bf16, i32, i64, u8")->capture_default_str();
  cmd->add_option("--num-objects,-k", f.num_objects, "reduce the first K inputs ready (0: all)")->capture_default_str();
  cmd->add_option("--timeout", f.timeout, "give up after this long (30s, 500ms, 2m)")->capture_default_str();
  cmd->add_option("--root", f.root, "build the result on this node (name or id; it must hold an input)");
}

}  // namespace

void AddReduceCommands(CLI::App& app, ReduceFlags& f) {
  AddVerb(app, "reduce", "combine INPUTS element-wise into a new object RESULT (on a dynamic tree)", f);
  AddVerb(app, "allreduce", "reduce, then copy RESULT to every node whose input took part", f);
}

bool IsReduceCommand(const CLI::App& app) { return app.got_subcommand("reduce") || app.got_subcommand("allreduce"); }

absl::Status RunReduceCommand(const CLI::App& app, const ReduceFlags& f, const std::string& ns, bool json_out,
                              const std::function<absl::StatusOr<std::unique_ptr<Client>>()>& connect) {
  const bool all = app.got_subcommand("allreduce");
  FERRY_ASSIGN_OR_RETURN(absl::Duration timeout, ParseDurationArg(f.timeout));
  std::optional<ReduceOp> op = ReduceOpFromName(f.op);
  if (!op) return absl::InvalidArgumentError(absl::StrCat("unknown op '", f.op, "' (sum, prod, min, max)"));
  std::optional<DType> dtype = DTypeFromName(f.dtype);
  if (!dtype) return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", f.dtype, "'"));
  std::vector<ObjectName> inputs;
  for (const std::string& key : f.inputs) inputs.push_back(ObjectName{ns, key});
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, connect());
  const ObjectName result{ns, f.result};
  const Client::ReduceOptions options{f.num_objects, timeout, f.root};
  absl::StatusOr<ReduceResult> r = all ? client->AllReduce(inputs, result, *op, *dtype, options)
                                       : client->Reduce(inputs, result, *op, *dtype, options);
  if (!r.ok()) return r.status();
  std::vector<std::string> used;
  for (uint32_t i : r->used) used.push_back(f.inputs[i]);
  size_t failed = 0;
  std::vector<std::vector<std::string>> rows;
  json copies = json::array();
  for (const BroadcastResult::Target& t : r->copies) {
    failed += t.ok ? 0 : 1;
    rows.push_back({t.node, t.ok ? "ok" : "FAILED", t.error});
    copies.push_back(json{{"node", t.node}, {"ok", t.ok}, {"error", t.error}});
  }
  if (json_out) {
    json used_json = json::array();
    for (const std::string& k : used) used_json.push_back(EscapeKey(k));
    std::cout << DumpJson(json{{"ns", ns}, {"result", EscapeKey(f.result)}, {"bytes", r->meta.size},
                               {"root", r->root_node}, {"used", used_json}, {"seconds", r->seconds},
                               {"copies", copies}})
              << "\n";
  } else {
    if (!rows.empty()) std::cout << FormatTable({"NODE", "RESULT", "ERROR"}, rows);
    std::cout << (all ? "allreduce " : "reduce ") << PrintableName(ns, f.result) << " (" << f.op << ", " << f.dtype
              << ", " << r->meta.size << " bytes) on " << r->root_node << " from " << Plural(used.size(), "input")
              << " (" << absl::StrJoin(used, ", ") << ") in " << FormatSeconds(r->seconds) << "\n";
  }
  if (failed > 0) {
    return absl::AbortedError(absl::StrCat("allreduce ", PrintableName(ns, f.result), ": ", failed, " of ",
                                           Plural(r->copies.size(), "participant"), " lack the result"));
  }
  return absl::OkStatus();
}

}  // namespace ferry::cli
