#include "sdk/placement_cli.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "sdk/cli_util.h"

namespace ferry::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kVerbs[] = {"resources", "acquire", "release", "leases", "lost"};
constexpr int kMaxBatch = 1024;

std::string Amount(double v) { return absl::StrCat(static_cast<int64_t>(v)); }

std::string AmountsText(const ResourceAmounts& amounts) {
  return absl::StrJoin(amounts, ",", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, "=", Amount(kv.second));
  });
}

absl::StatusOr<std::unique_ptr<PlacementClient>> Connect(const PlacementFlags& f,
                                                         const std::function<absl::Status(absl::Status)>& unreachable) {
  absl::StatusOr<std::unique_ptr<PlacementClient>> c = PlacementClient::Connect(f.coord, f.holder);
  if (!c.ok() && c.status().code() == absl::StatusCode::kUnavailable) return unreachable(c.status());
  return c;
}

absl::StatusOr<PlacementConstraint> ConstraintArg(const std::string& text) {
  if (text == "none") return PlacementConstraint::kNone;
  if (text == "same-node") return PlacementConstraint::kSameNode;
  if (text == "different-nodes") return PlacementConstraint::kDifferentNodes;
  if (text == "same-label") return PlacementConstraint::kSameLabelValue;
  return absl::InvalidArgumentError(
      absl::StrCat("--constraint '", text, "' is not one of none, same-node, different-nodes, same-label"));
}

json LeaseJson(const PlacementLease& l) {
  json bundles = json::array();
  for (const LeasedBundle& b : l.bundles) {
    bundles.push_back({{"node_id", b.node_id}, {"node", b.node_name}, {"amounts", b.amounts}});
  }
  return {{"lease_id", l.id}, {"holder", l.holder}, {"alternative", l.alternative}, {"bundles", bundles},
          {"expires_in_s", absl::ToDoubleSeconds(l.expiry - absl::Now())}, {"incarnation", l.incarnation}};
}

void PrintLeases(const std::vector<PlacementLease>& leases, bool as_json) {
  if (as_json) {
    json out = json::array();
    for (const PlacementLease& l : leases) out.push_back(LeaseJson(l));
    std::cout << DumpJson(out) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const PlacementLease& l : leases) {
    for (size_t i = 0; i < l.bundles.size(); ++i) {
      const LeasedBundle& b = l.bundles[i];
      rows.push_back({i == 0 ? absl::StrCat(l.id) : "", i == 0 ? l.holder : "", absl::StrCat(i),
                      absl::StrCat(b.node_name, " (", b.node_id, ")"), AmountsText(b.amounts),
                      i == 0 ? FormatSeconds(absl::ToDoubleSeconds(l.expiry - absl::Now())) : ""});
    }
  }
  std::cout << FormatTable({"LEASE", "HOLDER", "BUNDLE", "NODE", "AMOUNTS", "EXPIRES IN"}, rows);
}

absl::Status RunResources(PlacementClient& c, bool as_json) {
  absl::StatusOr<std::vector<NodeResources>> nodes = c.ClusterResources();
  if (!nodes.ok()) return nodes.status();
  if (as_json) {
    json out = json::array();
    for (const NodeResources& n : *nodes) {
      json res = json::object();
      for (const auto& [name, a] : n.resources) res[name] = {{"capacity", a.capacity}, {"available", a.available}};
      out.push_back({{"node_id", n.node_id}, {"node", n.name}, {"labels", n.labels}, {"resources", res}});
    }
    std::cout << DumpJson(out) << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows;
  for (const NodeResources& n : *nodes) {
    const std::string labels = absl::StrJoin(n.labels, ",", absl::PairFormatter("="));
    bool first = true;
    for (const auto& [name, a] : n.resources) {
      rows.push_back({first ? absl::StrCat(n.name, " (", n.node_id, ")") : "", first ? labels : "", name,
                      Amount(a.available), Amount(a.capacity)});
      first = false;
    }
    if (first) rows.push_back({absl::StrCat(n.name, " (", n.node_id, ")"), labels, "-", "", ""});
  }
  std::cout << FormatTable({"NODE", "LABELS", "RESOURCE", "AVAILABLE", "CAPACITY"}, rows);
  return absl::OkStatus();
}

absl::StatusOr<PlacementRequest> RequestOf(const PlacementFlags& f) {
  if (f.bundles.empty()) return absl::InvalidArgumentError("acquire needs at least one BUNDLE (gpu=1,host_mem=4096)");
  PlacementAlternative alt;
  absl::StatusOr<PlacementConstraint> constraint = ConstraintArg(f.constraint);
  if (!constraint.ok()) return constraint.status();
  alt.constraint = *constraint;
  alt.label_key = f.label_key;
  for (const std::string& b : f.bundles) {
    absl::StatusOr<ResourceAmounts> amounts = ParseBundleArg(b);
    if (!amounts.ok()) return amounts.status();
    alt.bundles.push_back(*std::move(amounts));
  }
  PlacementRequest r;
  r.alternatives.push_back(std::move(alt));
  r.priority = f.priority;
  r.scoring = f.spread ? PlacementScoring::kSpread : PlacementScoring::kPack;
  absl::StatusOr<absl::Duration> timeout = ParseDurationArg(f.timeout);
  absl::StatusOr<absl::Duration> ttl = ParseDurationArg(f.ttl);
  if (!timeout.ok()) return absl::InvalidArgumentError(absl::StrCat("--timeout: ", timeout.status().message()));
  if (!ttl.ok()) return absl::InvalidArgumentError(absl::StrCat("--ttl: ", ttl.status().message()));
  r.timeout = *timeout;
  r.lease_ttl = *ttl;
  if (f.count < 1 || f.count > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat("--count must be in [1, ", kMaxBatch, "], got ", f.count));
  }
  return r;
}

// acquire --count N: N leases in one AcquireBatch; every outcome printed, the first failure
// returned.
absl::Status RunAcquireBatch(PlacementClient& c, const PlacementRequest& r, int count, bool as_json) {
  absl::StatusOr<std::vector<absl::StatusOr<PlacementLease>>> got =
      c.AcquireBatch(std::vector<PlacementRequest>(static_cast<size_t>(count), r));
  if (!got.ok()) return got.status();
  std::vector<PlacementLease> granted;
  absl::Status first;
  for (size_t i = 0; i < got->size(); ++i) {
    if ((*got)[i].ok()) {
      granted.push_back(*(*got)[i]);
    } else {
      if (first.ok()) first = (*got)[i].status();
      std::cerr << "ferry: request " << i << ": " << (*got)[i].status().message() << "\n";
    }
  }
  PrintLeases(granted, as_json);
  return first;
}

// release LEASE...: one Release, or one ReleaseBatch for several.
absl::Status RunRelease(PlacementClient& c, const std::vector<uint64_t>& ids, bool as_json) {
  if (ids.size() > static_cast<size_t>(kMaxBatch)) {
    return absl::InvalidArgumentError(absl::StrCat("release takes at most ", kMaxBatch, " leases, got ", ids.size()));
  }
  std::vector<absl::Status> outcomes;
  if (ids.size() == 1) {
    outcomes.push_back(c.Release(ids[0]));
  } else {
    absl::StatusOr<std::vector<absl::Status>> batch = c.ReleaseBatch(ids);
    if (!batch.ok()) return batch.status();
    outcomes = *std::move(batch);
  }
  absl::Status first;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (outcomes[i].ok()) {
      if (!as_json) std::cout << "released lease " << ids[i] << "\n";
      continue;
    }
    if (first.ok()) first = outcomes[i];
    if (ids.size() > 1) std::cerr << "ferry: lease " << ids[i] << ": " << outcomes[i].message() << "\n";
  }
  return first;
}

// lost: watches --holder's leases for --for and prints each one lost.
absl::Status RunLost(const PlacementFlags& f, bool as_json, const std::function<absl::Status(absl::Status)>& unreachable) {
  absl::StatusOr<absl::Duration> span = ParseDurationArg(f.watch_for);
  if (!span.ok() || *span <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--for: '", f.watch_for, "' is not a positive duration"));
  }
  PlacementClientOptions options;
  options.watch = true;
  absl::StatusOr<std::unique_ptr<PlacementClient>> c = PlacementClient::Connect(f.coord, f.holder, options);
  if (!c.ok()) return absl::IsUnavailable(c.status()) ? unreachable(c.status()) : c.status();
  const absl::Time end = absl::Now() + *span;
  for (absl::Time now = absl::Now(); now < end; now = absl::Now()) {
    absl::StatusOr<LostPlacementLease> lost = (*c)->WaitLoss(end - now);
    if (!lost.ok()) break;
    if (as_json) {
      std::cout << DumpJson(json{{"lease_id", lost->lease_id}, {"reason", lost->reason}}) << "\n";
    } else {
      std::cout << "lost lease " << lost->lease_id << ": " << lost->reason << "\n";
    }
    std::cout.flush();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ResourceAmounts> ParseBundleArg(const std::string& text) {
  ResourceAmounts out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    double amount = 0;
    if (kv.first.empty() || !absl::SimpleAtod(kv.second, &amount)) {
      return absl::InvalidArgumentError(absl::StrCat("bundle '", text, "': '", part, "' is not NAME=AMOUNT"));
    }
    if (!out.emplace(kv.first, amount).second) {
      return absl::InvalidArgumentError(absl::StrCat("bundle '", text, "' names '", kv.first, "' twice"));
    }
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("bundle '", text, "' is empty"));
  return out;
}

void AddPlacementCommands(CLI::App& app, PlacementFlags& f) {
  CLI::App* verbs[5];
  verbs[0] = app.add_subcommand("resources", "every node's placement resources: available / capacity");
  verbs[1] = app.add_subcommand("acquire", "acquire a lease on BUNDLE... (NAME=AMOUNT,...; all or nothing)");
  verbs[1]->add_option("BUNDLE", f.bundles, "one bundle per argument, each on one node")->required();
  verbs[1]->add_option("--constraint", f.constraint, "none | same-node | different-nodes | same-label")
      ->capture_default_str();
  verbs[1]->add_option("--label-key", f.label_key, "with --constraint same-label: the label (rack)");
  verbs[1]->add_flag("--spread", f.spread, "prefer the emptiest nodes (default: pack)");
  verbs[1]->add_option("--priority", f.priority, "higher is served first")->capture_default_str();
  verbs[1]->add_option("--timeout", f.timeout, "wait at most this long for a grant")->capture_default_str();
  verbs[1]->add_option("--ttl", f.ttl, "the lease expires after this unless renewed")->capture_default_str();
  verbs[1]->add_option("--count", f.count, "acquire this many such leases in one AcquireBatch (1..1024)")
      ->capture_default_str();
  verbs[2] = app.add_subcommand("release", "release leases LEASE... (held by --holder; several: one ReleaseBatch)");
  verbs[2]->add_option("LEASE", f.leases, "lease ids")->required();
  verbs[3] = app.add_subcommand("leases", "the leases out");
  verbs[3]->add_flag("--mine", f.mine, "only --holder's");
  verbs[4] = app.add_subcommand("lost", "print --holder's leases as they are lost (WatchLeases), for --for");
  verbs[4]->add_option("--for", f.watch_for, "how long to watch")->capture_default_str();
  for (CLI::App* v : verbs) {
    v->add_option("--coord", f.coord, "ferry-coord's address")->envname("FERRY_COORD")->capture_default_str();
    v->add_option("--holder", f.holder, "who leases are granted to")->envname("FERRY_HOLDER")->capture_default_str();
  }
}

bool IsPlacementCommand(const CLI::App& app) {
  for (const char* v : kVerbs) {
    if (app.got_subcommand(v)) return true;
  }
  return false;
}

absl::Status RunPlacementCommand(const CLI::App& app, const PlacementFlags& f, bool json,
                                 const std::function<absl::Status(absl::Status)>& unreachable) {
  absl::StatusOr<PlacementRequest> request;
  if (app.got_subcommand("acquire") && !(request = RequestOf(f)).ok()) return request.status();
  if (app.got_subcommand("lost")) return RunLost(f, json, unreachable);
  absl::StatusOr<std::unique_ptr<PlacementClient>> c = Connect(f, unreachable);
  if (!c.ok()) return c.status();
  if (app.got_subcommand("resources")) return RunResources(**c, json);
  if (app.got_subcommand("release")) return RunRelease(**c, f.leases, json);
  if (app.got_subcommand("leases")) {
    absl::StatusOr<std::vector<PlacementLease>> leases = (*c)->ListLeases(!f.mine);
    if (leases.ok()) PrintLeases(*leases, json);
    return leases.status();
  }
  if (f.count > 1) return RunAcquireBatch(**c, *request, f.count, json);
  absl::StatusOr<PlacementLease> lease = (*c)->Acquire(*request);
  if (lease.ok()) PrintLeases({*lease}, json);
  return lease.status();
}

}  // namespace ferry::cli
