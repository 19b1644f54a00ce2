// p2p, p2p-stream, broadcast (explicit Client::Broadcast) and broadcast-get (implicit: concurrent Gets).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <latch>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "perf/ferry_perf/collective.h"
#include "perf/ferry_perf/pattern.h"

namespace ferry::perf {

void LogLine(std::string_view line) {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  std::fprintf(stderr, "%sferry-perf: %.*s\n", tty ? "\r\033[K" : "", static_cast<int>(line.size()),
               line.data());
}

absl::StatusOr<std::vector<PerfNode>> ConnectNodes(const std::vector<std::string>& sockets,
                                                   absl::Duration rpc_timeout) {
  std::vector<PerfNode> nodes;
  for (size_t i = 0; i < sockets.size(); ++i) {
    ConnectOptions options;
    options.rpc_timeout = rpc_timeout;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(sockets[i], options);
    if (!client.ok()) {
      return Annotate(client.status(), absl::StrCat("connect to node ", i, " at ", sockets[i]));
    }
    PerfNode node;
    node.socket = sockets[i];
    node.client = std::move(*client);
    absl::StatusOr<NodeStatus> status = node.client->Status();
    if (!status.ok()) {
      return Annotate(status.status(), absl::StrCat("Status of node ", i, " at ", sockets[i]));
    }
    node.name = status->self.name;
    node.arena_bytes = status->self.arena_bytes;
    nodes.push_back(std::move(node));
  }
  return nodes;
}

namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Shared mechanics: the root's per-iteration object, the expected bytes and the checks.
class ObjectCollective : public Collective {
 public:
  explicit ObjectCollective(PerfContext* ctx) : ctx_(ctx) {}
  double BoundFactor(int) const override { return 1.0; }
  double BusBwFactor(int) const override { return 1.0; }

  absl::Status Prepare(uint64_t bytes, int iter) override {
    bytes_ = bytes;
    iter_ = iter;
    name_ = IterName("");
    FERRY_RETURN_IF_ERROR(PutExpected(name_, PatternSeed(bytes, iter)));
    created_ = true;
    return absl::OkStatus();
  }

  void Cleanup(int) override {
    ReleaseViews();
    if (!created_) return;
    created_ = false;
    DeleteOnRoot(name_);
  }

 protected:
  Client& Root() { return *ctx_->nodes[0].client; }

  // perf/<collective>/<bytes>/<iter>/<part><run id>: unique per run, size and iteration.
  ObjectName IterName(std::string_view part) const {
    return ObjectName{ctx_->ns, absl::StrCat("perf/", name(), "/", bytes_, "/", iter_, "/",
                                             std::string(part), ctx_->run_id)};
  }

  // Fills expected_ (bytes_ long) with the pattern of `seed` and Puts it on node 0 as `name`.
  absl::Status PutExpected(const ObjectName& name, uint64_t seed) {
    if (expected_.size() < bytes_) expected_.resize(bytes_);  // first touch once, untimed
    FillPattern(seed, expected_.data(), bytes_);
    const size_t dsize = DTypeSize(ctx_->dtype);
    const DType dtype = dsize > 0 && bytes_ % dsize == 0 ? ctx_->dtype : DType::kBytes;
    return Annotate(Root().Put(name, std::span<const uint8_t>(expected_.data(), bytes_), dtype),
                    absl::StrCat("Put of ", name.key, " on node ", ctx_->nodes[0].name));
  }

  void DeleteOnRoot(const ObjectName& name) {
    if (absl::Status s = Root().Delete(name); !s.ok()) {
      LogLine(absl::StrCat("warning: Delete of ", name.key, ": ", s.ToString()));
    }
  }
  Client& NodeClient(int i) { return *ctx_->nodes[static_cast<size_t>(i)].client; }
  const std::string& NodeName(int i) const { return ctx_->nodes[static_cast<size_t>(i)].name; }
  virtual void ReleaseViews() {}

  std::string Where(int node) const {
    return absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ", node ", node, " (",
                        NodeName(node), ")");
  }

  // Wrong words in `view`, node `node`'s copy. The --corrupt-node hook flips one bit of the
  // expected first word for that node, so the real comparison must find it.
  uint64_t CheckView(int node, const ObjectView& view) {
    if (view.size() != bytes_) {
      LogLine(absl::StrCat(Where(node), ": copy has ", view.size(), " bytes, expected ", bytes_));
      return WordsIn(bytes_);
    }
    const bool corrupt = node == ctx_->corrupt_node && bytes_ > 0;
    if (corrupt) expected_[0] ^= 0x01;
    const uint64_t errors = CountMismatchedWords(view.data(), expected_.data(), bytes_);
    if (corrupt) expected_[0] ^= 0x01;
    if (errors > 0) {
      LogLine(absl::StrCat(Where(node), ": ", errors, " of ", WordsIn(bytes_),
                           " 8-byte words differ from the expected pattern",
                           corrupt ? " (--corrupt-node)" : ""));
    }
    return errors;
  }

  // Checks the copy node `node` holds now. A copy that is absent, or that Get had to pull
  // (it was not there), counts as missing: all its words are wrong.
  uint64_t CheckLocalCopy(int node) {
    absl::StatusOr<ObjectView> view = NodeClient(node).Get(name_, ctx_->timeout);
    if (!view.ok()) {
      LogLine(absl::StrCat(Where(node), ": no copy: ", view.status().ToString()));
      return WordsIn(bytes_);
    }
    if (view->info().pulled) {
      LogLine(absl::StrCat(Where(node), ": no local copy (Get had to pull it from node ",
                           view->info().source_node, ")"));
      return WordsIn(bytes_);
    }
    return CheckView(node, *view);
  }

  PerfContext* ctx_;
  uint64_t bytes_ = 0;
  int iter_ = 0;
  ObjectName name_;
  std::vector<uint8_t> expected_;
  bool created_ = false;
};

// Node 0 Puts, node 1 Gets; the Get is timed.
class P2p final : public ObjectCollective {
 public:
  using ObjectCollective::ObjectCollective;
  std::string name() const override { return "p2p"; }
  std::string description() const override {
    return "node 0 Puts (untimed); time = node 1's Get (pull of the whole object)";
  }

  absl::StatusOr<double> Run(int) override {
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<ObjectView> view = NodeClient(1).Get(name_, ctx_->timeout);
    const Clock::time_point t1 = Clock::now();
    if (!view.ok()) return Annotate(view.status(), Where(1));
    view_ = std::move(*view);
    return SecondsBetween(t0, t1);
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    if (!view_.valid()) return WordsIn(bytes_);
    return CheckView(1, view_);
  }

 private:
  void ReleaseViews() override { (void)view_.Release(); }
  ObjectView view_;
};

// A stream of p2p pulls, as ucx_perftest's tag_bw streams messages: node 0 Puts M objects
// (untimed), node 1 Gets them with `stream_inflight` Gets in flight. Run returns the time
// per object (total / M), so the sweep's bandwidth is the stream's. M = B / size between 1
// and 32, B = 256 MiB or half the smaller arena of nodes 0 and 1: from B up this is p2p.
class P2pStream final : public ObjectCollective {
 public:
  using ObjectCollective::ObjectCollective;
  std::string name() const override { return "p2p-stream"; }
  std::string description() const override {
    return absl::StrCat("node 0 Puts M = clamp(min(256 MiB, arena / 2) / size, 1, 32) objects (untimed); time = node 1 ",
                        "Gets all M, ", ctx_->stream_inflight, " at a time, divided by M");
  }

  absl::Status Prepare(uint64_t bytes, int iter) override {
    bytes_ = bytes;
    iter_ = iter;
    const uint64_t arena = std::min(ctx_->nodes[0].arena_bytes, ctx_->nodes[1].arena_bytes);
    const uint64_t budget = std::min<uint64_t>(256ull << 20, arena / 2);
    const uint64_t m = std::clamp<uint64_t>(budget / std::max<uint64_t>(bytes, 1), 1, 32);
    for (uint64_t i = 0; i < m; ++i) {
      ObjectName name = IterName(absl::StrCat(i, "/"));
      FERRY_RETURN_IF_ERROR(PutExpected(name, Seed(i)));
      names_.push_back(std::move(name));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<double> Run(int) override {
    const size_t m = names_.size();
    views_.clear();
    for (size_t i = 0; i < m; ++i) views_.emplace_back(absl::UnknownError("not run"));
    std::atomic<size_t> next{0};
    std::latch start(1);
    std::vector<std::thread> threads;
    for (int t = 0; t < ctx_->stream_inflight; ++t) {   // 1..16, checked with the flags
      threads.emplace_back([this, m, &next, &start] {
        start.wait();
        for (size_t i = next++; i < m; i = next++) views_[i] = NodeClient(1).Get(names_[i], ctx_->timeout);
      });
    }
    const Clock::time_point t0 = Clock::now();
    start.count_down();
    for (std::thread& t : threads) t.join();
    const Clock::time_point t1 = Clock::now();
    for (size_t i = 0; i < m; ++i) {
      if (!views_[i].ok()) return Annotate(views_[i].status(), absl::StrCat(Where(1), ", object ", i));
    }
    return SecondsBetween(t0, t1) / static_cast<double>(m);
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    uint64_t errors = 0;
    for (size_t i = 0; i < views_.size(); ++i) {
      if (!views_[i].ok()) {
        errors += WordsIn(bytes_);
        continue;
      }
      FillPattern(Seed(i), expected_.data(), bytes_);   // each object has its own bytes
      errors += CheckView(1, *views_[i]);
    }
    return errors;
  }

  void Cleanup(int) override {
    views_.clear();
    for (const ObjectName& name : names_) DeleteOnRoot(name);
    names_.clear();
  }

 private:
  uint64_t Seed(uint64_t i) const { return PatternSeed(bytes_, static_cast<int64_t>(iter_) * 64 + static_cast<int64_t>(i)); }

  std::vector<ObjectName> names_;
  std::vector<absl::StatusOr<ObjectView>> views_;
};

// Explicit broadcast: node 0 Puts (untimed), then Client::Broadcast to every live node is
// timed; it returns when every node holds a complete copy (or failed).
class Broadcast final : public ObjectCollective {
 public:
  using ObjectCollective::ObjectCollective;
  std::string name() const override { return "broadcast"; }
  std::string description() const override {
    return "node 0 Puts (untimed); time = Client::Broadcast(all nodes) until every node holds "
           "a complete copy";
  }

  absl::StatusOr<double> Run(int) override {
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<BroadcastResult> result = Root().Broadcast(name_, {}, ctx_->timeout);
    const double seconds = SecondsBetween(t0, Clock::now());
    if (!result.ok()) return Annotate(result.status(), absl::StrCat(name(), " of ", name_.key));
    result_ = std::move(*result);
    if (ctx_->verbose) {
      // The coordinator's own time (plan -> last target complete) apart from the client's: the
      // difference is the client -> ferryd -> coordinator path and the reply's way back.
      LogLine(absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ": client ",
                           absl::StrFormat("%.3f", seconds * 1e3), " ms, coordinator ",
                           absl::StrFormat("%.3f", result_.seconds * 1e3), " ms"));
    }
    return seconds;
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    uint64_t errors = 0;
    for (const BroadcastResult::Target& t : result_.targets) {
      if (t.ok) continue;
      LogLine(absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ": Broadcast reports node ",
                           t.node, " failed: ", t.error));
      ++errors;
    }
    for (int i = 0; i < ctx_->size(); ++i) errors += CheckLocalCopy(i);
    return errors;
  }

 private:
  void ReleaseViews() override { result_ = {}; }
  BroadcastResult result_;
};

// Implicit broadcast: every non-root node Gets at once (one thread per node, released
// together); time = until the last Get returns.
class BroadcastGet final : public ObjectCollective {
 public:
  using ObjectCollective::ObjectCollective;
  std::string name() const override { return "broadcast-get"; }
  std::string description() const override {
    return "node 0 Puts (untimed); time = nodes 1..N-1 Get concurrently, until the last returns";
  }

  absl::StatusOr<double> Run(int) override {
    const int n = ctx_->size();
    views_.clear();
    for (int i = 0; i < n; ++i) views_.emplace_back(absl::UnknownError("not run"));
    std::vector<Clock::time_point> done(static_cast<size_t>(n));
    std::latch start(1);
    std::vector<std::thread> threads;
    for (int i = 1; i < n; ++i) {
      threads.emplace_back([this, i, &start, &done] {
        start.wait();
        views_[static_cast<size_t>(i)] = NodeClient(i).Get(name_, ctx_->timeout);
        done[static_cast<size_t>(i)] = Clock::now();
      });
    }
    const Clock::time_point t0 = Clock::now();
    start.count_down();
    for (std::thread& t : threads) t.join();
    const Clock::time_point last = *std::max_element(done.begin() + 1, done.end());
    for (int i = 1; i < n; ++i) {
      const absl::StatusOr<ObjectView>& v = views_[static_cast<size_t>(i)];
      if (!v.ok()) return Annotate(v.status(), Where(i));
    }
    return SecondsBetween(t0, last);
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    uint64_t errors = 0;
    for (int i = 1; i < ctx_->size(); ++i) {
      const absl::StatusOr<ObjectView>& v = views_[static_cast<size_t>(i)];
      errors += v.ok() ? CheckView(i, *v) : WordsIn(bytes_);
    }
    return errors;
  }

 private:
  void ReleaseViews() override { views_.clear(); }
  std::vector<absl::StatusOr<ObjectView>> views_;
};

// A Get on node 0 of an object sealed on node 0, through a client of its own: with the
// SDK's local fast path (local-get; docs/protocol.md "Local requests") or with the RPC only
// (local-get-rpc), so one run shows both. Node 0 Puts (untimed); time = the Get, until the
// view is in hand (each Release untimed).
class LocalGet final : public ObjectCollective {
 public:
  LocalGet(PerfContext* ctx, bool fast) : ObjectCollective(ctx), fast_(fast) {}
  std::string name() const override { return fast_ ? "local-get" : "local-get-rpc"; }
  std::string description() const override {
    return fast_ ? "node 0 Puts (untimed); time = median of 100 Gets on node 0 by another client (local fast path)"
                 : "node 0 Puts (untimed); time = median of 100 Gets on node 0 by another client (RPC only)";
  }
  int min_nodes() const override { return 1; }

  absl::Status Prepare(uint64_t bytes, int iter) override {
    if (client_ == nullptr) {
      ConnectOptions o;
      o.rpc_timeout = ctx_->timeout;
      o.local_fast_path = fast_;
      absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(ctx_->nodes[0].socket, o);
      if (!c.ok()) return Annotate(c.status(), absl::StrCat("connect to node 0 at ", ctx_->nodes[0].socket));
      client_ = std::move(*c);
    }
    return ObjectCollective::Prepare(bytes, iter);
  }

  // One sample = the median of kGets Gets in a row (each view released, untimed, before the
  // next), so a sample is not one scheduler hiccup and a profile of the run is the Get path.
  absl::StatusOr<double> Run(int) override {
    std::vector<double> times;
    times.reserve(kGets);
    for (int i = 0; i < kGets; ++i) {
      const Clock::time_point t0 = Clock::now();
      absl::StatusOr<ObjectView> view = client_->Get(name_, ctx_->timeout);
      const Clock::time_point t1 = Clock::now();
      if (!view.ok()) return Annotate(view.status(), Where(0));
      times.push_back(SecondsBetween(t0, t1));
      view_ = std::move(*view);   // the previous view is released here
    }
    std::nth_element(times.begin(), times.begin() + kGets / 2, times.end());
    return times[kGets / 2];
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    if (!view_.valid()) return WordsIn(bytes_);
    if (view_.info().pulled) {
      LogLine(absl::StrCat(Where(0), ": the Get pulled the object: it was not local"));
      return WordsIn(bytes_);
    }
    return CheckView(0, view_);
  }

 private:
  static constexpr int kGets = 100;
  void ReleaseViews() override { (void)view_.Release(); }
  const bool fast_;
  std::unique_ptr<Client> client_;
  ObjectView view_;
};

}  // namespace

std::vector<std::string> KnownCollectives() {
  return {"p2p", "p2p-stream", "broadcast", "broadcast-get", "local-get", "local-get-rpc", "model-bcast",
          "model-join", "model-batch", "model-join-batch", "reduce", "reduce-subset", "allreduce", "group-allreduce"};
}

absl::StatusOr<std::unique_ptr<Collective>> MakeCollective(std::string_view name,
                                                           PerfContext* ctx) {
  if (name == "p2p") return std::make_unique<P2p>(ctx);
  if (name == "p2p-stream") return std::make_unique<P2pStream>(ctx);
  if (name == "broadcast") return std::make_unique<Broadcast>(ctx);
  if (name == "broadcast-get") return std::make_unique<BroadcastGet>(ctx);
  if (name == "local-get") return std::make_unique<LocalGet>(ctx, /*fast=*/true);
  if (name == "local-get-rpc") return std::make_unique<LocalGet>(ctx, /*fast=*/false);
  if (std::unique_ptr<Collective> model = MakeModelCollective(name, ctx)) return model;
  if (std::unique_ptr<Collective> reduce = MakeReduceCollective(name, ctx)) return reduce;
  return absl::InvalidArgumentError(absl::StrCat("unknown collective '", std::string(name), "' (known: ",
                                                 absl::StrJoin(KnownCollectives(), ", "), ")"));
}

}  // namespace ferry::perf
