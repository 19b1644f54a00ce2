#include "sdk/group_cli.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/dtype.h"
#include "core/names.h"
#include "sdk/cli_util.h"

namespace ferry::cli {
namespace {

using json = nlohmann::json;

json GroupJson(const GroupInfo& g) {
  json members = json::array();
  for (const GroupMember& m : g.members) {
    members.push_back(json{{"rank", m.rank}, {"node", m.node}, {"node_id", m.node_id}, {"host", m.host}});
  }
  return json{{"name", g.name},       {"id", g.id},         {"members", members},
              {"revoked", g.revoked}, {"why", g.revoked_why}, {"collectives", g.collectives},
              {"lease", g.lease_id}};
}

void PrintGroup(const GroupInfo& g) {
  std::vector<std::vector<std::string>> rows;
  for (const GroupMember& m : g.members) rows.push_back({absl::StrCat(m.rank), m.node, m.host});
  std::cout << "group " << g.name << " (" << Plural(g.members.size(), "member") << ", "
            << Plural(g.collectives, "collective") << " done"
            << (g.lease_id != 0 ? absl::StrCat(", from lease ", g.lease_id) : "") << ")"
            << (g.revoked ? absl::StrCat(": REVOKED, ", g.revoked_why) : "") << "\n"
            << FormatTable({"RANK", "NODE", "HOST"}, rows);
}

}  // namespace

void AddGroupCommands(CLI::App& app, GroupFlags& f) {
  CLI::App* group = app.add_subcommand("group", "static groups: fixed members and ranks, ring collectives");
  group->require_subcommand(1);
  CLI::App* create = group->add_subcommand(
      "create", "make group NAME of NODES, or of the nodes of a placement lease (ranks: members of a host, then of a rack, adjacent)");
  create->add_option("NAME", f.name, "group name")->required();
  create->add_option("NODES", f.nodes, "member node names, at least two");
  create->add_option("--lease", f.lease, "instead of NODES: the nodes of this lease (revoked when it ends)");
  create->add_option("--holder", f.holder, "the lease's holder")->envname("FERRY_HOLDER");
  CLI::App* del = group->add_subcommand("delete", "forget group NAME (revoked or not)");
  del->add_option("NAME", f.name, "group name")->required();
  group->add_subcommand("list", "every group, with its members and whether it is revoked");
  CLI::App* run = group->add_subcommand("run", "run collective KIND on group NAME into the new object RESULT");
  run->add_option("KIND", f.kind, "allreduce, reduce-scatter, allgather, broadcast or reduce")->required();
  run->add_option("NAME", f.name, "group name")->required();
  run->add_option("RESULT", f.result, "key of the new result object")->required();
  run->add_option("INPUTS", f.inputs, "input keys in rank order, each sealed on its member (broadcast: the root's)")
      ->required();
  run->add_option("--op", f.op, "sum, prod, min or max (reducing kinds)")->capture_default_str();
  run->add_option("--dtype", f.dtype, "element type of the inputs: f32, f64, f16, bf16, i32, i64, u8")
      ->capture_default_str();
  run->add_option("--root", f.root, "the root's rank (broadcast, reduce)")->capture_default_str();
  run->add_option("--timeout", f.timeout, "give up after this long (30s, 500ms, 2m)")->capture_default_str();
  run->add_flag("--fallback", f.fallback, "allreduce: retry on a dynamic tree if a member is dead");
}

bool IsGroupCommand(const CLI::App& app) { return app.got_subcommand("group"); }

absl::Status RunGroupCommand(const CLI::App& app, const GroupFlags& f, const std::string& ns, bool json_out,
                             const std::function<absl::StatusOr<std::unique_ptr<Client>>()>& connect) {
  const CLI::App* group = app.get_subcommand("group");
  if (group->got_subcommand("create") || group->got_subcommand("delete")) {
    const bool create = group->got_subcommand("create");
    if (create && f.nodes.empty() == (f.lease == 0)) {
      return absl::InvalidArgumentError("group create: give member NODES or --lease, one of the two");
    }
    if (create && f.lease != 0 && f.holder.empty()) {
      return absl::InvalidArgumentError("group create --lease: --holder (or FERRY_HOLDER) is needed");
    }
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, connect());
    FERRY_ASSIGN_OR_RETURN(GroupInfo g, !create         ? client->DeleteGroup(f.name)
                                        : f.lease != 0 ? client->CreateGroupFromLease(f.name, f.lease, f.holder)
                                                       : client->CreateGroup(f.name, f.nodes));
    if (json_out) {
      std::cout << DumpJson(GroupJson(g)) << "\n";
    } else {
      if (!create) std::cout << "deleted ";
      PrintGroup(g);
    }
    return absl::OkStatus();
  }
  if (group->got_subcommand("list")) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, connect());
    FERRY_ASSIGN_OR_RETURN(std::vector<GroupInfo> groups, client->ListGroups());
    if (json_out) {
      json all = json::array();
      for (const GroupInfo& g : groups) all.push_back(GroupJson(g));
      std::cout << DumpJson(all) << "\n";
    } else if (groups.empty()) {
      std::cout << "no groups\n";
    } else {
      for (const GroupInfo& g : groups) PrintGroup(g);
    }
    return absl::OkStatus();
  }
  // run
  std::optional<GroupOp> kind = GroupOpFromName(f.kind);
  if (!kind) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown group collective '", f.kind, "' (allreduce, reduce-scatter, allgather, broadcast, reduce)"));
  }
  FERRY_ASSIGN_OR_RETURN(absl::Duration timeout, ParseDurationArg(f.timeout));
  Client::GroupCollectiveOptions o;
  std::optional<ReduceOp> op = ReduceOpFromName(f.op);
  if (!op) return absl::InvalidArgumentError(absl::StrCat("unknown op '", f.op, "' (sum, prod, min, max)"));
  std::optional<DType> dtype = DTypeFromName(f.dtype);
  if (!dtype) return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", f.dtype, "'"));
  o.op = *op;
  o.dtype = *dtype;
  o.root = f.root;
  o.timeout = timeout;
  o.dynamic_fallback = f.fallback;
  std::vector<ObjectName> inputs;
  for (const std::string& key : f.inputs) inputs.push_back(ObjectName{ns, key});
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, connect());
  FERRY_ASSIGN_OR_RETURN(GroupResult r, client->GroupCollective(f.name, *kind, inputs, ObjectName{ns, f.result}, o));
  if (json_out) {
    json used = json::array();
    for (uint32_t u : r.used) used.push_back(u);
    std::cout << DumpJson(json{{"group", f.name}, {"kind", GroupOpName(*kind)}, {"ns", ns},
                               {"result", EscapeKey(f.result)}, {"bytes", r.meta.size}, {"nodes", r.nodes},
                               {"seconds", r.seconds}, {"dynamic", r.dynamic}, {"used_ranks", used}})
              << "\n";
  } else {
    std::cout << GroupOpName(*kind) << " on group " << f.name << ": " << PrintableName(ns, f.result) << " ("
              << r.meta.size << " bytes) on " << absl::StrJoin(r.nodes, ", ") << " in " << FormatSeconds(r.seconds);
    if (r.dynamic) {
      std::cout << " (on a dynamic tree after the group failed; ranks used: " << absl::StrJoin(r.used, ", ") << ")";
    }
    std::cout << "\n";
  }
  return absl::OkStatus();
}

}  // namespace ferry::cli
