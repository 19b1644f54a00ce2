// Weight-sync collectives of issue 14: a whole model version (model_shape.h) moved with
// today's per-object SDK calls (model_sync.h).
//   model-bcast  time = node 0 Puts every tensor, then Broadcasts every tensor to all nodes
//   model-join   node 0 Puts (untimed); receivers join one every --join-stagger-ms and each
//                Gets every tensor; each receiver's own time runs from its join
//   model-batch  node 0 puts the model in one PutBatch (untimed), then one BroadcastBatch of
//                the whole model to all nodes (issue 14's batch path: one plan, small tensors
//                packed); time = the batch
//   model-join-batch  as model-join, each receiver getting the model in one GetBatch: a late
//                receiver joins the batch in flight (extends its chain; batch_chains.h)
// Every receiver's copy of every tensor is checked against the hash of what node 0 put
// (fresh contents per iteration, so a stale copy fails); every tensor is deleted afterwards.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "perf/ferry_perf/collective.h"
#include "perf/ferry_perf/model_sync.h"
#include "perf/ferry_perf/pattern.h"
#include "perf/ferry_perf/report.h"
#include "perf/ferry_perf/sweep.h"

namespace ferry::perf {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// What both collectives share: the shape, the trainer's copy of the tensors (outside the
// arena), the per-tensor expected hashes, the names of one iteration, and the checks.
class ModelCollective : public Collective {
 public:
  explicit ModelCollective(PerfContext* ctx)
      : ctx_(ctx), shape_(MakeModelShape(ctx->model, ctx->model_scale, ctx->model_seed)) {
    uint64_t off = 0;
    for (const TensorSpec& t : shape_.tensors) {
      offsets_.push_back(off);
      off += t.bytes;
    }
  }
  double BoundFactor(int) const override { return 1.0; }
  double BusBwFactor(int) const override { return 1.0; }
  uint64_t fixed_bytes() const override { return shape_.total_bytes; }

  absl::Status Prepare(uint64_t, int iter) override {
    iter_ = iter;
    uint64_t arena = UINT64_MAX;
    for (const PerfNode& n : ctx_->nodes) arena = std::min(arena, n.arena_bytes);
    if (shape_.total_bytes > arena / 10 * 9) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: model %s (%d B) does not fit in 90%% of the smallest arena (%d B): lower "
          "--model-scale or raise perf/cluster --arena",
          name(), ModelKindName(shape_.kind), shape_.total_bytes, arena));
    }
    if (host_.size() < shape_.total_bytes) host_.resize(shape_.total_bytes);  // touched once
    const size_t n = shape_.tensors.size();
    names_.assign(n, ObjectName{});
    hashes_.assign(n, 0);
    tensors_.assign(n, TensorData{});
    for (size_t i = 0; i < n; ++i) {
      uint8_t* data = host_.data() + offsets_[i];
      const uint64_t bytes = shape_.tensors[i].bytes;
      FillPattern(TensorSeed(i), data, bytes);
      hashes_[i] = ContentHash({data, bytes});
      names_[i] = ObjectName{ctx_->ns, absl::StrCat("perf/", name(), "/", iter, "/", ctx_->run_id,
                                                    "/", shape_.tensors[i].name)};
      tensors_[i] = TensorData{names_[i], {data, bytes}};
    }
    return absl::OkStatus();
  }

  void Cleanup(int) override {
    ReleaseViews();
    if (!put_started_) return;
    put_started_ = false;
    const Clock::time_point t0 = Clock::now();
    const uint64_t failed = DeleteModel(Root(), names_, ctx_->inflight, batched());
    if (failed > 0 || ctx_->verbose) {
      LogLine(absl::StrFormat("%s iter %d: deleted %d tensors in %.3f s (%d Deletes failed)", name(),
                              iter_, names_.size(), SecondsBetween(t0, Clock::now()), failed));
    }
  }

  void AddDetails(Row* row) override {
    ModelDetails m;
    m.shape = DescribeShape(shape_);
    m.kind = ModelKindName(shape_.kind);
    m.scale = shape_.scale;
    m.tensors = shape_.tensors.size();
    m.inflight = ctx_->inflight;
    m.put_s = Quantile(put_s_, 0.5);
    m.transfer_s = Quantile(transfer_s_, 0.5);
    for (size_t k = 0; k < own_s_.size(); ++k) {
      if (own_s_[k].empty()) continue;
      m.receivers.push_back({NodeName(static_cast<int>(k)), Quantile(join_s_[k], 0.5),
                             Quantile(own_s_[k], 0.5)});
    }
    row->count = shape_.total_bytes / kElementBytes;
    row->dtype = "bf16";
    row->model = std::move(m);
    put_s_.clear();
    transfer_s_.clear();
    own_s_.clear();
    join_s_.clear();
  }

 protected:
  Client& Root() { return *ctx_->nodes[0].client; }
  Client& NodeClient(int i) { return *ctx_->nodes[static_cast<size_t>(i)].client; }
  const std::string& NodeName(int i) const { return ctx_->nodes[static_cast<size_t>(i)].name; }
  virtual void ReleaseViews() {}
  // Whether puts and deletes of the model go through the batch calls (PutBatch, DeleteBatch).
  virtual bool batched() const { return false; }

  // Distinct per tensor and iteration (warm-ups have negative iterations).
  uint64_t TensorSeed(size_t i) const {
    return PatternSeed(shape_.tensors[i].bytes ^ (ctx_->model_seed << 32),
                       static_cast<int64_t>(iter_) * 1'000'003 + static_cast<int64_t>(i));
  }

  // Puts the model on node 0; returns the seconds it took.
  absl::StatusOr<double> PutOnRoot() {
    put_started_ = true;  // from here on Cleanup deletes, also after a partial Put
    const Clock::time_point t0 = Clock::now();
    FERRY_RETURN_IF_ERROR(Annotate(batched() ? PutModelBatch(Root(), tensors_) : PutModel(Root(), tensors_, ctx_->inflight),
                                   absl::StrCat(name(), " on node ", NodeName(0))));
    return SecondsBetween(t0, Clock::now());
  }

  // Wrong 8-byte words in node `node`'s copy of tensor i. The hash decides; on a mismatch
  // the words are counted against the regenerated pattern (at least 1: the --corrupt-node
  // hook flips the expected hash of tensor 0, so the real comparison must catch it).
  uint64_t CheckTensor(int node, size_t i, const ObjectView& view) {
    const uint64_t bytes = shape_.tensors[i].bytes;
    if (view.size() != bytes) {
      LogLine(absl::StrCat(Where(node, i), ": copy has ", view.size(), " bytes, expected ", bytes));
      return WordsIn(bytes);
    }
    const bool corrupt = node == ctx_->corrupt_node && i == 0;
    const uint64_t expected = hashes_[i] ^ (corrupt ? 1 : 0);
    if (ContentHash(view.bytes()) == expected) return 0;
    std::vector<uint8_t> pattern(bytes);
    FillPattern(TensorSeed(i), pattern.data(), bytes);
    const uint64_t words = CountMismatchedWords(view.data(), pattern.data(), bytes);
    LogLine(absl::StrCat(Where(node, i), ": content hash differs from what node 0 put; ", words,
                         " of ", WordsIn(bytes), " 8-byte words differ",
                         corrupt ? " (--corrupt-node)" : ""));
    return std::max<uint64_t>(words, 1);
  }

  // Every receiver must hold a complete local copy of every tensor (a Get that had to pull
  // means the broadcast did not deliver it); the wrong words in all of them.
  uint64_t CheckLocalCopies() {
    std::atomic<uint64_t> errors{0};
    for (int node = 1; node < ctx_->size(); ++node) {
      (void)ForEachBounded(names_.size(), ctx_->inflight, [&](size_t i) {
        absl::StatusOr<ObjectView> v = NodeClient(node).Get(names_[i], ctx_->timeout);
        if (!v.ok() || v->info().pulled) {
          LogLine(absl::StrCat(Where(node, i), ": no local copy: ",
                               v.ok() ? "Get had to pull it" : v.status().ToString()));
          errors += WordsIn(shape_.tensors[i].bytes);
        } else {
          errors += CheckTensor(node, i, *v);
        }
        return absl::OkStatus();
      });
    }
    return errors.load();
  }

  std::string Where(int node, size_t i) const {
    return absl::StrCat(name(), " iter ", iter_, ", node ", node, " (", NodeName(node), "), tensor ",
                        i, " ", shape_.tensors[i].name);
  }

  PerfContext* ctx_;
  ModelShape shape_;
  std::vector<uint64_t> offsets_;
  int iter_ = 0;
  std::vector<uint8_t> host_;  // the trainer's tensors, back to back
  std::vector<ObjectName> names_;
  std::vector<uint64_t> hashes_;
  std::vector<TensorData> tensors_;
  bool put_started_ = false;
  // Timed iterations only; turned into medians by AddDetails.
  std::vector<double> put_s_, transfer_s_;
  std::vector<std::vector<double>> own_s_, join_s_;  // [node][iteration]
};

class ModelBcast final : public ModelCollective {
 public:
  using ModelCollective::ModelCollective;
  std::string name() const override { return "model-bcast"; }
  std::string description() const override {
    return absl::StrCat("time = node 0 Puts every tensor, then Broadcasts every tensor to all nodes (",
                        ctx_->inflight, " per-object calls in flight); every receiver's tensors checked");
  }

  absl::StatusOr<double> Run(int iter) override {
    const Clock::time_point t0 = Clock::now();
    FERRY_ASSIGN_OR_RETURN(const double put, PutOnRoot());
    const Clock::time_point t1 = Clock::now();
    FERRY_ASSIGN_OR_RETURN(results_, BroadcastModel(Root(), names_, ctx_->inflight, ctx_->timeout));
    const Clock::time_point t2 = Clock::now();
    if (iter >= 0) {
      put_s_.push_back(put);
      transfer_s_.push_back(SecondsBetween(t1, t2));
    }
    if (ctx_->verbose) {
      LogLine(absl::StrFormat("%s iter %d: put %.3f s, broadcast %.3f s", name(), iter, put,
                              SecondsBetween(t1, t2)));
    }
    return SecondsBetween(t0, t2);
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    std::atomic<uint64_t> errors{0};
    for (size_t i = 0; i < results_.size(); ++i) {
      for (const BroadcastResult::Target& t : results_[i].targets) {
        if (t.ok) continue;
        LogLine(absl::StrCat(name(), " iter ", iter_, ": Broadcast of tensor ", i,
                             " reports node ", t.node, " failed: ", t.error));
        ++errors;
      }
    }
    return errors.load() + CheckLocalCopies();
  }

 private:
  void ReleaseViews() override { results_.clear(); }
  std::vector<BroadcastResult> results_;
};

class ModelBatch final : public ModelCollective {
 public:
  using ModelCollective::ModelCollective;
  std::string name() const override { return "model-batch"; }
  std::string description() const override {
    return "node 0 puts the model in one PutBatch (untimed); time = one BroadcastBatch of the whole model to all "
           "nodes; every receiver's tensors checked";
  }

  absl::Status Prepare(uint64_t bytes, int iter) override {
    FERRY_RETURN_IF_ERROR(ModelCollective::Prepare(bytes, iter));
    FERRY_ASSIGN_OR_RETURN(put_, PutOnRoot());
    return absl::OkStatus();
  }

  absl::StatusOr<double> Run(int iter) override {
    const Clock::time_point t0 = Clock::now();
    FERRY_ASSIGN_OR_RETURN(result_, Root().BroadcastBatch(names_, {}, ctx_->timeout));
    const double took = SecondsBetween(t0, Clock::now());
    if (iter >= 0) {
      put_s_.push_back(put_);
      transfer_s_.push_back(took);
    }
    if (ctx_->verbose) {
      LogLine(absl::StrFormat("%s iter %d: put %.3f s, batch broadcast %.3f s (coordinator: %.3f s)", name(), iter,
                              put_, took, result_.seconds));
    }
    return took;
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    std::atomic<uint64_t> errors{0};
    for (const BroadcastResult::Target& t : result_.targets) {
      if (t.ok) continue;
      LogLine(absl::StrCat(name(), " iter ", iter_, ": node ", t.node, " failed: ", t.error));
      ++errors;
    }
    for (const BatchBroadcastResult::EntryError& e : result_.errors) {
      LogLine(absl::StrCat(name(), " iter ", iter_, ": tensor ", e.index, " on ", e.node.empty() ? "every node" : e.node,
                           ": ", e.error));
      ++errors;
    }
    return errors.load() + CheckLocalCopies();
  }

 private:
  bool batched() const override { return true; }
  double put_ = 0;
  BatchBroadcastResult result_;
};

class ModelJoin final : public ModelCollective {
 public:
  // `batch`: each receiver gets the model in one GetBatch (joining the batch in flight) instead
  // of one Get per tensor.
  ModelJoin(PerfContext* ctx, bool batch) : ModelCollective(ctx), batch_(batch) {}
  std::string name() const override { return batch_ ? "model-join-batch" : "model-join"; }
  std::string description() const override {
    return absl::StrCat("node 0 puts every tensor (untimed); receivers join one every ",
                        absl::FormatDuration(ctx_->join_stagger), ", each ",
                        batch_ ? std::string("GetBatches the whole model") : absl::StrCat("Gets every tensor (", ctx_->inflight, " in flight)"),
                        "; time = the slowest receiver's own time (join to last tensor); bound S/B per receiver");
  }

  absl::Status Prepare(uint64_t bytes, int iter) override {
    FERRY_RETURN_IF_ERROR(ModelCollective::Prepare(bytes, iter));
    FERRY_ASSIGN_OR_RETURN(put_, PutOnRoot());
    return absl::OkStatus();
  }

  absl::StatusOr<double> Run(int iter) override {
    const int n = ctx_->size();
    views_.clear();
    views_.resize(static_cast<size_t>(n));
    std::vector<absl::Status> status(static_cast<size_t>(n));
    std::vector<double> join(static_cast<size_t>(n)), own(static_cast<size_t>(n));
    std::vector<Clock::time_point> done(static_cast<size_t>(n));
    const Clock::time_point t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int k = 1; k < n; ++k) {
      threads.emplace_back([&, k] {
        const size_t u = static_cast<size_t>(k);
        // The schedule itself: receiver k arrives (k-1) staggers after the first.
        std::this_thread::sleep_until(t0 + absl::ToChronoNanoseconds(ctx_->join_stagger * (k - 1)));
        const Clock::time_point start = Clock::now();
        absl::StatusOr<std::vector<ObjectView>> v = batch_ ? GetModelBatch(NodeClient(k), names_, ctx_->timeout)
                                                           : GetModel(NodeClient(k), names_, ctx_->inflight, ctx_->timeout);
        done[u] = Clock::now();
        join[u] = SecondsBetween(t0, start);
        own[u] = SecondsBetween(start, done[u]);
        if (v.ok()) {
          views_[u] = std::move(*v);
        } else {
          status[u] = Annotate(v.status(), absl::StrCat(name(), ", node ", k, " (", NodeName(k), ")"));
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (const absl::Status& s : status) FERRY_RETURN_IF_ERROR(s);
    const double slowest = *std::max_element(own.begin() + 1, own.end());
    const Clock::time_point last = *std::max_element(done.begin() + 1, done.end());
    if (iter >= 0) {
      put_s_.push_back(put_);
      transfer_s_.push_back(SecondsBetween(t0, last));
      own_s_.resize(static_cast<size_t>(n));
      join_s_.resize(static_cast<size_t>(n));
      for (size_t k = 1; k < static_cast<size_t>(n); ++k) {
        own_s_[k].push_back(own[k]);
        join_s_[k].push_back(join[k]);
      }
    }
    return slowest;
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    uint64_t errors = 0;
    for (int node = 1; node < ctx_->size(); ++node) {
      const std::vector<ObjectView>& views = views_[static_cast<size_t>(node)];
      for (size_t i = 0; i < names_.size(); ++i) {
        errors += i < views.size() && views[i].valid() ? CheckTensor(node, i, views[i])
                                                       : WordsIn(shape_.tensors[i].bytes);
      }
    }
    return errors;
  }

 private:
  void ReleaseViews() override { views_.clear(); }
  bool batched() const override { return batch_; }
  const bool batch_;
  double put_ = 0;
  std::vector<std::vector<ObjectView>> views_;  // [node][tensor]
};

}  // namespace

std::unique_ptr<Collective> MakeModelCollective(std::string_view name, PerfContext* ctx) {
  if (name == "model-bcast") return std::make_unique<ModelBcast>(ctx);
  if (name == "model-join") return std::make_unique<ModelJoin>(ctx, /*batch=*/false);
  if (name == "model-join-batch") return std::make_unique<ModelJoin>(ctx, /*batch=*/true);
  if (name == "model-batch") return std::make_unique<ModelBatch>(ctx);
  return nullptr;
}

}  // namespace ferry::perf
