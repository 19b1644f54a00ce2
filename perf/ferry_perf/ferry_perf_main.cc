// ferry-perf: nccl-tests-style sweeps of ferry collectives on a running cluster.
//
//   perf/cluster -n 8 --rate 1gbit -- build/bin/ferry-perf --coll broadcast,broadcast-get
//
// For each collective and size: warm-ups (untimed), then timed iterations; every iteration
// (warm-ups included) is verified on every receiving node. One table row per size on stdout;
// JSON lines (--json) in the shape of perf/baselines; exit 1 if any error was found.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "core/dtype.h"
#include "perf/ferry_perf/collective.h"
#include "perf/ferry_perf/pattern.h"
#include "perf/ferry_perf/report.h"
#include "perf/ferry_perf/sweep.h"

namespace ferry::perf {
namespace {

struct Flags {
  std::string sockets;
  std::string colls = "p2p,broadcast,broadcast-get";
  std::string min_bytes = "1K";
  std::string max_bytes = "256M";
  uint64_t factor = 4;
  int iters = 5;
  int warmup = 1;
  std::string iter_bytes = "1G";
  std::string warmup_bytes;
  std::string dtype = "f32";
  std::string op = "sum";
  std::string link_bps;
  std::string timeout = "120s";
  std::string json_path;
  std::string csv_path;
  std::string system = "ferry";
  std::string ns = "default";
  int corrupt_node = -1;
  int stream_inflight = 2;
  std::string model = "mix";
  double model_scale = 1.0;
  uint64_t model_seed = 0;
  int inflight = 16;
  int join_stagger_ms = 150;
  bool node_stats = false;
  bool verbose = false;
  std::string cluster_warmup = "64M";
};

constexpr uint64_t kLinkProbeBytes = 64ull << 20;

// What the sweep needs besides the context: the plan and how the link bound was obtained.
struct Setup {
  SweepPlan plan;
  std::vector<std::string> colls;
  std::string op;
  double link_Bps = 0;
  std::string link_source;
};

void AddFlags(CLI::App& app, Flags* f) {
  app.add_option("--sockets", f->sockets,
                 "ferryd sockets, comma- or space-separated, node order; node 0 is the root "
                 "(default: $FERRY_SOCKETS, set by perf/cluster)");
  app.add_option("--coll", f->colls, absl::StrCat("collectives: ", absl::StrJoin(KnownCollectives(), ",")))
      ->capture_default_str();
  app.add_option("--model", f->model,
                 "model-*: mix (292 tensors, 128 B..256 MiB, ~1 GB), moe (10,179 "
                 "tensors, mostly 40 KiB, ~550 MB) or small (1,000 x 4 KiB); one row, sizes ignored")
      ->capture_default_str();
  app.add_option("--model-scale", f->model_scale,
                 "multiply every tensor above 64 KiB by this (0 < s <= 4); e.g. 0.25 for mix on "
                 "a 512 MiB arena")
      ->capture_default_str();
  app.add_option("--model-seed", f->model_seed,
                 "0: tensors in state-dict order; else the order they are issued in is shuffled "
                 "with this seed (contents always depend on it)")
      ->capture_default_str();
  app.add_option("--inflight", f->inflight,
                 "model-*: per-object SDK calls in flight per node (threads; 1-64)")
      ->capture_default_str();
  app.add_option("--join-stagger-ms", f->join_stagger_ms,
                 "model-join, model-join-batch: receiver k starts (k-1) * this after the first (0-10000)")
      ->capture_default_str();
  app.add_option("--stream-inflight", f->stream_inflight, "p2p-stream: Gets in flight (1-16)")
      ->capture_default_str();
  app.add_option("-b,--min-bytes", f->min_bytes, "smallest size (1K, 64M, ...)")
      ->capture_default_str();
  app.add_option("-e,--max-bytes", f->max_bytes, "largest size")->capture_default_str();
  app.add_option("-f,--factor", f->factor, "size multiplier between steps")->capture_default_str();
  app.add_option("-n,--iters", f->iters, "timed iterations per size (upper bound)")
      ->capture_default_str();
  app.add_option("-w,--warmup", f->warmup, "untimed warm-up iterations per size (upper bound)")
      ->capture_default_str();
  app.add_option("--iter-bytes", f->iter_bytes,
                 "big sizes run fewer iterations: iters = clamp(B / size, 1, --iters); 0 = off")
      ->capture_default_str();
  app.add_option("--warmup-bytes", f->warmup_bytes,
                 "and fewer warm-ups: warmup = clamp(B / size, 0, --warmup) (default off)");
  app.add_option("-d,--dtype", f->dtype, "element type (recorded; sets the count column)")
      ->capture_default_str();
  app.add_option("-o,--op", f->op, "reduction op sum|prod|min|max (reduce, allreduce, group-allreduce)")
      ->capture_default_str();
  app.add_option("--link-Bps", f->link_bps,
                 "per-node link bandwidth B in bytes/s for the bound (default: $FERRY_LINK_BPS, "
                 "else $FERRY_RATE_BPS*0.95/8, else measured by a 64 MiB p2p)");
  app.add_option("--timeout", f->timeout, "deadline of each Get / Broadcast")
      ->capture_default_str();
  app.add_option("--json", f->json_path, "append one JSON line per size to this file");
  app.add_option("--csv", f->csv_path, "append one CSV row per size to this file");
  app.add_option("--system", f->system, "system label in the JSON lines")->capture_default_str();
  app.add_option("--ns", f->ns, "namespace of the objects ferry-perf creates")
      ->capture_default_str();
  app.add_option("--cluster-warmup", f->cluster_warmup,
                 "before the sweep, broadcast this much twice (untimed, verified) so the nodes "
                 "have measured their links as a running cluster would have (capped at --max-bytes; 0: off)")
      ->capture_default_str();
  app.add_flag("--node-stats", f->node_stats,
               "after each iteration, log every node's bytes sent/received and retries during it "
               "(shows the tree ferry built)");
  app.add_flag("-v,--verbose", f->verbose, "log each iteration's phases (model-*) or client and coordinator times (broadcast)");
  // Hidden test hook: the verifier treats node I's first word as wrong.
  app.add_option("--corrupt-node", f->corrupt_node, "")->group("");
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, absl::ByAnyChar(", \t\n"), absl::SkipEmpty());
}

absl::StatusOr<absl::Duration> ParseTimeout(const std::string& text) {
  absl::Duration d;
  double seconds = 0;
  if (absl::ParseDuration(text, &d) && d > absl::ZeroDuration() && d != absl::InfiniteDuration()) {
    return d;
  }
  if (absl::SimpleAtod(text, &seconds) && seconds > 0) return absl::Seconds(seconds);
  return absl::InvalidArgumentError(absl::StrCat("bad --timeout '", text, "' (e.g. 120s, 2m)"));
}

absl::StatusOr<SweepPlan> MakePlan(const Flags& f) {
  SweepPlan p;
  std::optional<uint64_t> lo = ParseBytes(f.min_bytes), hi = ParseBytes(f.max_bytes);
  if (!lo || !hi || *lo == 0 || *hi < *lo) {
    return absl::InvalidArgumentError("need 1 <= --min-bytes <= --max-bytes (e.g. 1K, 256M)");
  }
  if (f.factor < 2) return absl::InvalidArgumentError("--factor must be >= 2");
  if (f.iters < 1 || f.warmup < 0) {
    return absl::InvalidArgumentError("need --iters >= 1 and --warmup >= 0");
  }
  if (f.stream_inflight < 1 || f.stream_inflight > 16) {
    return absl::InvalidArgumentError("--stream-inflight must be between 1 and 16");
  }
  if (!ModelKindFromName(f.model)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown --model '", f.model, "' (mix, moe, small)"));
  }
  if (!(f.model_scale > 0 && f.model_scale <= 4)) {
    return absl::InvalidArgumentError("--model-scale must be in (0, 4]");
  }
  if (f.inflight < 1 || f.inflight > 64) {
    return absl::InvalidArgumentError("--inflight must be between 1 and 64");
  }
  if (f.join_stagger_ms < 0 || f.join_stagger_ms > 10000) {
    return absl::InvalidArgumentError("--join-stagger-ms must be between 0 and 10000");
  }
  p.min_bytes = *lo;
  p.max_bytes = *hi;
  p.factor = f.factor;
  p.iters = f.iters;
  p.warmup = f.warmup;
  for (auto [text, out] :
       {std::pair{&f.iter_bytes, &p.iter_bytes}, std::pair{&f.warmup_bytes, &p.warmup_bytes}}) {
    if (text->empty()) continue;
    std::optional<uint64_t> v = ParseBytes(*text);
    if (!v) return absl::InvalidArgumentError("bad --iter-bytes / --warmup-bytes");
    *out = *v;
  }
  std::optional<uint64_t> warm = ParseBytes(f.cluster_warmup);
  if (!warm) return absl::InvalidArgumentError(absl::StrCat("bad --cluster-warmup '", f.cluster_warmup, "'"));
  p.cluster_warmup = std::min(*warm, p.max_bytes);   // never more than the sweep itself moves
  return p;
}

std::string RandomRunId() {
  std::random_device rd;
  return absl::StrFormat("%08x", rd());
}

// One iteration: Prepare, Run, Verify, Cleanup. Adds wrong words to *errors; returns the
// time, or nullopt if the iteration failed (counted as one error).
std::optional<double> RunIteration(Collective& c, uint64_t bytes, int iter, uint64_t* errors) {
  auto fail = [&](const absl::Status& s, const char* stage) {
    LogLine(absl::StrCat(c.name(), " ", bytes, " B iter ", iter, ": ", stage,
                         " failed: ", s.ToString()));
    ++*errors;
  };
  std::optional<double> time;
  if (absl::Status s = c.Prepare(bytes, iter); !s.ok()) {
    fail(s, "Prepare");
  } else if (absl::StatusOr<double> t = c.Run(iter); !t.ok()) {
    fail(t.status(), "Run");
  } else if (absl::StatusOr<uint64_t> e = c.Verify(iter); !e.ok()) {
    fail(e.status(), "Verify");
  } else {
    *errors += *e;
    time = *t;
  }
  c.Cleanup(iter);
  return time;
}

// Per-node data-plane counters, for --node-stats.
struct Counters {
  uint64_t sent = 0, received = 0, retries = 0;
};
std::vector<Counters> Snapshot(const PerfContext& ctx) {
  std::vector<Counters> out(ctx.nodes.size());
  for (size_t i = 0; i < ctx.nodes.size(); ++i) {
    absl::StatusOr<NodeStatus> st = ctx.nodes[i].client->Status();
    if (st.ok()) out[i] = {st->bytes_sent, st->bytes_received, st->retries};
  }
  return out;
}

void LogNodeStats(const PerfContext& ctx, const std::string& coll, uint64_t bytes, int iter,
                  std::optional<double> t, const std::vector<Counters>& before,
                  const std::vector<Counters>& after) {
  std::string line =
      absl::StrFormat("stats %s %s iter %d (%s): MiB sent/received", coll, HumanBytes(bytes), iter,
                      t ? absl::StrFormat("%.3f s", *t) : std::string("failed"));
  uint64_t retries = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    absl::StrAppendFormat(&line, " %s=%.0f/%.0f", ctx.nodes[i].name,
                          static_cast<double>(after[i].sent - before[i].sent) / (1 << 20),
                          static_cast<double>(after[i].received - before[i].received) / (1 << 20));
    retries += after[i].retries - before[i].retries;
  }
  absl::StrAppend(&line, "; sender retries ", retries);
  LogLine(line);
}

void Progress(const std::string& coll, uint64_t bytes, int done, int total) {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  if (tty) {
    std::fprintf(stderr, "\r\033[Kferry-perf: %s %s: iteration %d/%d", coll.c_str(),
                 HumanBytes(bytes).c_str(), done + 1, total);
  } else if (done == 0) {
    std::fprintf(stderr, "ferry-perf: %s %s: %d iterations (warm-ups included)\n", coll.c_str(),
                 HumanBytes(bytes).c_str(), total);
  }
  std::fflush(stderr);
}

Row RunSize(Collective& c, const PerfContext& ctx, const Setup& setup, const Flags& f,
            uint64_t bytes) {
  const int iters = ItersFor(setup.plan, bytes);
  const int warmup = WarmupFor(setup.plan, bytes);
  std::vector<double> times;
  Row row;
  for (int it = -warmup; it < iters; ++it) {
    Progress(c.name(), bytes, it + warmup, iters + warmup);
    std::vector<Counters> before;
    if (f.node_stats) before = Snapshot(ctx);
    std::optional<double> t = RunIteration(c, bytes, it, &row.errors);
    if (f.node_stats) LogNodeStats(ctx, c.name(), bytes, it, t, before, Snapshot(ctx));
    if (!t) {
      ++row.failed_iters;
    } else if (it >= 0) {
      times.push_back(*t);
    }
  }
  const int n = ctx.size();
  const size_t dsize = std::max<size_t>(DTypeSize(*DTypeFromName(f.dtype)), 1);
  row.system = f.system;
  row.coll = c.name();
  row.bytes = bytes;
  row.count = bytes / dsize;
  row.dtype = f.dtype;
  row.op = c.reduces() ? setup.op : "none";
  row.nodes = n;
  row.iters = static_cast<int>(times.size());
  row.warmup = warmup;
  row.stats = ComputeRow(times, bytes, c.BusBwFactor(n), c.BoundFactor(n), setup.link_Bps);
  row.link_Bps = setup.link_Bps;
  row.link_source = setup.link_source;
  row.run_id = ctx.run_id;
  row.times_s = std::move(times);
  c.AddDetails(&row);
  return row;
}

// --link-Bps, else $FERRY_LINK_BPS, else $FERRY_RATE_BPS*0.95/8 (tbf delivers ~95%).
absl::Status LinkFromFlagsOrEnv(const Flags& f, Setup* setup) {
  double v = 0;
  if (!f.link_bps.empty()) {
    if (!absl::SimpleAtod(f.link_bps, &v) || v <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad --link-Bps '", f.link_bps, "'"));
    }
    setup->link_Bps = v;
    setup->link_source = "--link-Bps";
  } else if (const char* e = std::getenv("FERRY_LINK_BPS"); e && absl::SimpleAtod(e, &v) && v > 0) {
    setup->link_Bps = v;
    setup->link_source = "FERRY_LINK_BPS";
  } else if (const char* r = std::getenv("FERRY_RATE_BPS"); r && absl::SimpleAtod(r, &v) && v > 0) {
    setup->link_Bps = v * 0.95 / 8;
    setup->link_source = "FERRY_RATE_BPS*0.95/8";
  }
  return absl::OkStatus();
}

// No configured link bandwidth: measure it as ferry's own p2p at 64 MiB (median of 3 after
// one warm-up). On an unshaped cluster this makes p2p's time/bound ~1 by construction.
uint64_t MeasureLink(PerfContext* ctx, Setup* setup) {
  uint64_t errors = 0;
  if (ctx->size() < 2) {
    LogLine("one node only: link bandwidth unknown, no bound");
    return 0;
  }
  absl::StatusOr<std::unique_ptr<Collective>> p2p = MakeCollective("p2p", ctx);
  std::vector<double> times;
  for (int it = -1; it < 3; ++it) {
    // Keys apart from the sweep's (see WarmUpCluster).
    std::optional<double> t = RunIteration(**p2p, kLinkProbeBytes, it - 1000, &errors);
    if (t && it >= 0) times.push_back(*t);
  }
  const double median = Quantile(times, 0.5);
  if (median > 0) {
    setup->link_Bps = static_cast<double>(kLinkProbeBytes) / median;
    setup->link_source = "measured: ferry p2p 64M";
  }
  LogLine(
      absl::StrFormat("no --link-Bps / FERRY_LINK_BPS / FERRY_RATE_BPS: measured B with a "
                      "64 MiB p2p (node 0 -> 1): %.1f MB/s (%d errors)",
                      setup->link_Bps / 1e6, errors));
  return errors;
}

// The cost model plans with the bandwidth and per-hop latency the nodes measured on their
// own pulls; a fresh cluster has measured nothing and plans with the coordinator's defaults.
// Two untimed broadcasts give every node the measurements a running cluster would have.
uint64_t WarmUpCluster(PerfContext* ctx, uint64_t bytes) {
  if (bytes == 0 || ctx->size() < 2) return 0;
  absl::StatusOr<std::unique_ptr<Collective>> bcast = MakeCollective("broadcast", ctx);
  if (!bcast.ok()) return 1;
  uint64_t errors = 0;
  // Iteration numbers the sweep never uses: its objects must not reuse these keys. (ferryd
  // answers a fetch for a key deleted there in the last 10 s with "deleted", even when the key
  // has been put again since: see docs/architecture.md, "Failure handling".)
  for (int it = -1002; it < -1000; ++it) RunIteration(**bcast, bytes, it, &errors);
  LogLine(absl::StrCat("cluster warm-up: 2 broadcasts of ", HumanBytes(bytes), " (", errors,
                       " errors)"));
  return errors;
}

void PrintBanner(const PerfContext& ctx, const Setup& s, const Flags& f) {
  std::string names;
  for (const PerfNode& n : ctx.nodes) absl::StrAppend(&names, names.empty() ? "" : ",", n.name);
  std::printf("# ferry-perf: %d nodes (%s), root node 0, run %s\n", ctx.size(), names.c_str(),
              ctx.run_id.c_str());
  if (s.link_Bps > 0) {
    std::printf("# link B = %.1f MB/s (%s); bound = factor * S / B (1 for p2p/broadcast)\n",
                s.link_Bps / 1e6, s.link_source.c_str());
  } else {
    std::printf("# link B unknown: no bound\n");
  }
  std::printf(
      "# iters %d (iter-bytes %s), warm-up %d; dtype %s; timeout %s; every iteration "
      "is verified (errors = wrong 8-byte words + failed iterations)\n",
      s.plan.iters, f.iter_bytes.c_str(), s.plan.warmup, f.dtype.c_str(), f.timeout.c_str());
}

absl::StatusOr<Setup> Validate(const Flags& f, std::vector<std::string>* sockets) {
  Setup s;
  FERRY_ASSIGN_OR_RETURN(s.plan, MakePlan(f));
  s.colls = SplitList(f.colls);
  if (s.colls.empty()) return absl::InvalidArgumentError("--coll is empty");
  if (!DTypeFromName(f.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown --dtype '", f.dtype, "'"));
  }
  if (f.op != "sum" && f.op != "prod" && f.op != "min" && f.op != "max") {
    return absl::InvalidArgumentError(absl::StrCat("unknown --op '", f.op, "'"));
  }
  s.op = f.op;
  std::string list = f.sockets;
  if (list.empty()) {
    const char* env = std::getenv("FERRY_SOCKETS");
    list = env != nullptr ? env : "";
  }
  *sockets = SplitList(list);
  if (sockets->empty()) {
    return absl::InvalidArgumentError("no ferryd sockets: pass --sockets or set FERRY_SOCKETS");
  }
  return s;
}

// INVALID_ARGUMENT for an unknown name or too few nodes.
absl::StatusOr<std::vector<std::unique_ptr<Collective>>> MakeCollectives(
    const std::vector<std::string>& names, PerfContext* ctx) {
  std::vector<std::unique_ptr<Collective>> colls;
  for (const std::string& name : names) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Collective> c, MakeCollective(name, ctx));
    if (ctx->size() < c->min_nodes()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " needs at least ", c->min_nodes(), " nodes, have ", ctx->size()));
    }
    colls.push_back(std::move(c));
  }
  return colls;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "ferry-perf: nccl-tests-style sweeps of ferry collectives (p2p, broadcast,\n"
      "broadcast-get) and weight-sync workloads (model-bcast, model-join, model-batch, model-join-batch: a whole model\n"
      "version of --model, one row) over a running cluster, through libferry. Each iteration gets fresh\n"
      "objects, is timed, verified byte for byte on every receiving node, then deleted.\n"
      "Table on stdout; --json appends lines shaped like perf/baselines':\n"
      "  {\"system\":\"ferry\",\"coll\":..,\"bytes\":..,\"nodes\":N,\"time_median_s\":..,"
      "\"time_p90_s\":..,\"algbw_Bps\":..,\"busbw_Bps\":..,\"bound_s\":..,"
      "\"time_over_bound\":..,\"errors\":..,\"iters\":..}\n"
      "Exit code: 0 = no errors, 1 = errors or a failed setup, 2 = bad usage."};
  Flags f;
  AddFlags(app, &f);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::vector<std::string> sockets;
  absl::StatusOr<Setup> setup = Validate(f, &sockets);
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(f.timeout);
  if (setup.ok()) {
    if (absl::Status s = LinkFromFlagsOrEnv(f, &*setup); !s.ok()) setup = s;
  }
  if (!setup.ok() || !timeout.ok()) {
    LogLine(std::string((!setup.ok() ? setup.status() : timeout.status()).message()));
    return 2;
  }
  PerfContext ctx;
  ctx.ns = f.ns;
  ctx.run_id = RandomRunId();
  ctx.dtype = *DTypeFromName(f.dtype);
  ctx.op = *ReduceOpFromName(f.op);
  ctx.timeout = *timeout;
  ctx.corrupt_node = f.corrupt_node;
  ctx.stream_inflight = f.stream_inflight;
  ctx.model = *ModelKindFromName(f.model);
  ctx.model_scale = f.model_scale;
  ctx.model_seed = f.model_seed;
  ctx.inflight = f.inflight;
  ctx.verbose = f.verbose;
  ctx.join_stagger = absl::Milliseconds(f.join_stagger_ms);
  absl::StatusOr<std::vector<PerfNode>> nodes = ConnectNodes(sockets, *timeout + absl::Seconds(30));
  if (!nodes.ok()) {
    LogLine(nodes.status().ToString());
    return 1;
  }
  ctx.nodes = std::move(*nodes);
  absl::StatusOr<std::vector<std::unique_ptr<Collective>>> made =
      MakeCollectives(setup->colls, &ctx);
  if (!made.ok()) {
    LogLine(std::string(made.status().message()));
    return 2;
  }
  std::vector<std::unique_ptr<Collective>> colls = std::move(*made);
  absl::StatusOr<std::unique_ptr<Reporter>> reporter = Reporter::Open(f.json_path, f.csv_path);
  if (!reporter.ok()) {
    LogLine(std::string(reporter.status().message()));
    return 2;
  }
  uint64_t total_errors = setup->link_Bps > 0 ? 0 : MeasureLink(&ctx, &*setup);
  total_errors += WarmUpCluster(&ctx, setup->plan.cluster_warmup);
  PrintBanner(ctx, *setup, f);
  for (const std::unique_ptr<Collective>& c : colls) {
    (*reporter)->TableHeader(c->name(), c->description());
    const std::vector<uint64_t> sizes =
        c->fixed_bytes() > 0 ? std::vector<uint64_t>{c->fixed_bytes()} : SweepSizes(setup->plan);
    for (uint64_t bytes : sizes) {
      Row row = RunSize(*c, ctx, *setup, f, bytes);
      total_errors += row.errors;
      (*reporter)->Emit(row);
    }
  }
  colls.clear();  // views die before the clients
  std::printf("# total errors: %llu\n", static_cast<unsigned long long>(total_errors));
  if (isatty(STDERR_FILENO) == 1) std::fprintf(stderr, "\r\033[K");
  return total_errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ferry::perf

int main(int argc, char** argv) {
  ferry::DisableMutexDeadlockDetection();
  return ferry::perf::Main(argc, argv);
}
