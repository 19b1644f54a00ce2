// reduce, reduce-subset, allreduce and group-allreduce (issue 15): every node Puts one input
// (untimed; reduce-subset: the second half during the call); Client::Reduce / Client::AllReduce
// (dynamic trees) or Client::GroupCollective(kAllReduce) on a static group of every node
// (created once per run; inputs passed in the group's rank order: a pipelined ring)
// of all of them into a new object is timed. Verify checks every element of
// the result (allreduce: every node's local copy) against a sequential fold of the inputs with
// core/reduce.h's ReduceInto (itself checked against a scalar reference in its unit test). The
// inputs are exact in every dtype (small integers for sum, min and max; +-{0.5, 1, 2} for prod;
// full-range integers for the integer dtypes), so the tree's combining order cannot change a
// bit and the comparison is exact.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/dtype.h"
#include "core/reduce.h"
#include "perf/ferry_perf/collective.h"
#include "perf/ferry_perf/pattern.h"

namespace ferry::perf {
namespace {

using Clock = std::chrono::steady_clock;

// `v` (exact in every float dtype: 0, small integers, powers of two) as `dtype`'s bytes at p.
void EncodeExact(DType dtype, double v, uint8_t* p) {
  const float f = static_cast<float>(v);
  uint32_t b;
  std::memcpy(&b, &f, 4);
  switch (dtype) {
    case DType::kF32: std::memcpy(p, &f, 4); return;
    case DType::kF64: std::memcpy(p, &v, 8); return;
    case DType::kBF16: {
      const uint16_t h = static_cast<uint16_t>(b >> 16);
      std::memcpy(p, &h, 2);
      return;
    }
    default: {   // f16: sign, rebiased exponent, top 10 mantissa bits (exact for these values)
      uint16_t h = static_cast<uint16_t>((b >> 16) & 0x8000);
      if ((b & 0x7fffffff) != 0) {
        h |= static_cast<uint16_t>(((((b >> 23) & 0xff) - 127 + 15) << 10) | ((b >> 13) & 0x3ff));
      }
      std::memcpy(p, &h, 2);
      return;
    }
  }
}

void FillExact(ReduceOp op, DType dtype, uint64_t seed, uint8_t* data, size_t bytes) {
  std::mt19937_64 rng(seed);
  const size_t w = DTypeSize(dtype);
  const bool is_float = dtype == DType::kF32 || dtype == DType::kF64 || dtype == DType::kF16 || dtype == DType::kBF16;
  static constexpr double kProd[] = {-2, -1, -0.5, 0.5, 1, 2};
  for (size_t off = 0; off + w <= bytes; off += w) {
    if (!is_float) {
      const uint64_t v = rng();
      std::memcpy(data + off, &v, w);
    } else {
      EncodeExact(dtype, op == ReduceOp::kProd ? kProd[rng() % 6] : static_cast<double>(static_cast<int>(rng() % 17) - 8),
                  data + off);
    }
  }
}

class ReducePerf final : public Collective {
 public:
  ReducePerf(PerfContext* ctx, bool all, bool group, bool subset = false)
      : ctx_(ctx), all_(all || group), group_(group), subset_(subset) {}

  std::string name() const override {
    return group_ ? "group-allreduce" : all_ ? "allreduce" : subset_ ? "reduce-subset" : "reduce";
  }
  std::string description() const override {
    if (subset_) {
      return "nodes 0..k-1 Put inputs (untimed), k = N/2; time = Client::Reduce of all N inputs with num_objects k, "
             "while nodes k..N-1 Put theirs 200 ms after the call starts (late inputs: spares, not used)";
    }
    if (group_) {
      return "node i Puts input i (untimed); time = Client::GroupCollective(kAllReduce) on a static group of every "
             "node (ring reduce-scatter + allgather, pipelined) until every member holds the result";
    }
    return all_ ? "node i Puts input i (untimed); time = Client::AllReduce of every input until every node holds "
                  "the result (its broadcast overlapped with the reduce)"
                : "node i Puts input i (untimed); time = Client::Reduce of every input until the result is sealed on "
                  "the tree's root";
  }
  bool reduces() const override { return true; }
  double BoundFactor(int n) const override { return all_ ? 2.0 * (n - 1) / n : 1.0; }
  double BusBwFactor(int n) const override { return BoundFactor(n); }

  absl::Status Prepare(uint64_t bytes, int iter) override {
    const size_t w = DTypeSize(ctx_->dtype);
    if (ctx_->dtype == DType::kBytes || bytes == 0 || bytes % w != 0) {
      return absl::InvalidArgumentError(absl::StrCat(name(), ": ", bytes, " B is not a positive multiple of --dtype ",
                                                     DTypeName(ctx_->dtype), " (a numeric dtype is needed)"));
    }
    bytes_ = bytes;
    iter_ = iter;
    if (group_ && group_name_.empty()) {
      std::vector<std::string> members;
      for (const PerfNode& n : ctx_->nodes) members.push_back(n.name);
      const std::string g = absl::StrCat("perf-", ctx_->run_id.empty() ? "run" : ctx_->run_id);
      absl::StatusOr<GroupInfo> made = Node(0).CreateGroup(g, members);
      if (!made.ok()) return Annotate(made.status(), "creating the static group");
      group_name_ = g;
      // Ranks follow hosts and racks, not the order given: input r is the one on member r.
      rank_node_.clear();
      for (const GroupMember& m : made->members) {
        auto it = std::find(members.begin(), members.end(), m.node);
        if (it == members.end()) return absl::InternalError(absl::StrCat("group member ", m.node, " is not a perf node"));
        rank_node_.push_back(static_cast<int>(it - members.begin()));
      }
    }
    std::vector<uint8_t> input(bytes);
    expected_.assign(bytes, 0);
    late_.clear();
    for (int i = 0; i < ctx_->size(); ++i) {
      FillExact(ctx_->op, ctx_->dtype, PatternSeed(bytes, iter) + static_cast<uint64_t>(i), input.data(), bytes);
      ObjectName name = Name(absl::StrCat("in", i));
      if (i >= Used()) {   // reduce-subset: a late input, Put during Run
        late_.push_back(input);
        inputs_.push_back(std::move(name));
        continue;
      }
      if (i == 0) {
        expected_ = input;
      } else {
        FERRY_RETURN_IF_ERROR(ReduceInto(ctx_->op, ctx_->dtype, expected_.data(), input.data(), bytes));
      }
      FERRY_RETURN_IF_ERROR(Annotate(Node(i).Put(name, input, ctx_->dtype), absl::StrCat("Put of ", name.key)));
      inputs_.push_back(std::move(name));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<double> Run(int) override {
    const ObjectName result = Name("out");
    const Clock::time_point t0 = Clock::now();
    if (group_) {
      Client::GroupCollectiveOptions o;
      o.op = ctx_->op;
      o.dtype = ctx_->dtype;
      o.timeout = ctx_->timeout;
      std::vector<ObjectName> by_rank;
      for (int i : rank_node_) by_rank.push_back(inputs_[i]);
      absl::StatusOr<GroupResult> g = Node(0).GroupCollective(group_name_, GroupOp::kAllReduce, by_rank, result, o);
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!g.ok()) return Annotate(g.status(), absl::StrCat(name(), " of ", bytes_, " B"));
      result_ = {};
      if (g->nodes.size() != static_cast<size_t>(ctx_->size())) {
        result_.copies.push_back(BroadcastResult::Target{"?", false, absl::StrCat("the result is on ", g->nodes.size(),
                                                                                   " of ", ctx_->size(), " members")});
      }
      return seconds;
    }
    if (subset_) {
      // The late inputs arrive while the reduce runs; their Puts are local (no traffic).
      absl::Status late_status;
      std::thread late([this, &late_status] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        for (size_t j = 0; j < late_.size() && late_status.ok(); ++j) {
          const int i = Used() + static_cast<int>(j);
          late_status = Node(i).Put(inputs_[static_cast<size_t>(i)], late_[j], ctx_->dtype);
        }
      });
      absl::StatusOr<ReduceResult> r =
          Node(0).Reduce(inputs_, result, ctx_->op, ctx_->dtype, static_cast<uint32_t>(Used()), ctx_->timeout);
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      late.join();
      if (!r.ok()) return Annotate(r.status(), absl::StrCat(name(), " of ", bytes_, " B"));
      if (!late_status.ok()) return Annotate(late_status, "a late input's Put");
      result_ = std::move(*r);
      return seconds;
    }
    absl::StatusOr<ReduceResult> r = all_ ? Node(0).AllReduce(inputs_, result, ctx_->op, ctx_->dtype, 0, ctx_->timeout)
                                          : Node(0).Reduce(inputs_, result, ctx_->op, ctx_->dtype, 0, ctx_->timeout);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!r.ok()) return Annotate(r.status(), absl::StrCat(name(), " of ", bytes_, " B"));
    result_ = std::move(*r);
    return seconds;
  }

  absl::StatusOr<uint64_t> Verify(int) override {
    uint64_t errors = 0;
    for (const BroadcastResult::Target& t : result_.copies) {
      if (t.ok) continue;
      LogLine(absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ": node ", t.node, " lacks the result: ", t.error));
      ++errors;
    }
    for (int i = 0; i < (all_ ? ctx_->size() : 1); ++i) errors += Check(i);
    if (subset_) {
      std::vector<uint32_t> used = result_.used;
      std::sort(used.begin(), used.end());
      std::vector<uint32_t> want(static_cast<size_t>(Used()));
      for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<uint32_t>(i);
      if (used != want) {
        LogLine(absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ": used ", used.size(),
                             " inputs, not the first ", Used(), " ready"));
        ++errors;
      }
    }
    return errors;
  }

  void Cleanup(int) override {
    result_ = {};
    inputs_.push_back(Name("out"));
    for (const ObjectName& n : inputs_) (void)Node(0).Delete(n);
    inputs_.clear();
  }

 private:
  Client& Node(int i) { return *ctx_->nodes[static_cast<size_t>(i)].client; }
  // The inputs reduced: all, or for reduce-subset the first half (at least one).
  int Used() const { return subset_ ? std::max(1, ctx_->size() / 2) : ctx_->size(); }
  ObjectName Name(const std::string& part) const {
    return ObjectName{ctx_->ns, absl::StrCat("perf/", name(), "/", bytes_, "/", iter_, "/", part, ctx_->run_id)};
  }
  // Wrong words of the result as node i reads it (allreduce: it must hold a local copy).
  uint64_t Check(int i) {
    absl::StatusOr<ObjectView> v = Node(i).Get(Name("out"), ctx_->timeout);
    if (!v.ok() || v->size() != bytes_ || (all_ && v->info().pulled)) {
      LogLine(absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ": node ", i, " has no ",
                           all_ ? "local copy of the result" : "result", v.ok() ? "" : ": " + v.status().ToString()));
      return WordsIn(bytes_);
    }
    const bool corrupt = i == ctx_->corrupt_node;
    if (corrupt) expected_[0] ^= 0x01;
    const uint64_t errors = CountMismatchedWords(v->data(), expected_.data(), bytes_);
    if (corrupt) expected_[0] ^= 0x01;
    if (errors > 0) {
      LogLine(absl::StrCat(name(), " ", bytes_, " B iter ", iter_, ": node ", i, ": ", errors, " of ", WordsIn(bytes_),
                           " 8-byte words differ from the sequential fold"));
    }
    return errors;
  }

  PerfContext* const ctx_;
  const bool all_;
  const bool group_;
  const bool subset_;
  std::vector<std::vector<uint8_t>> late_;   // reduce-subset: the inputs Put during Run
  std::string group_name_;   // the static group, once created
  std::vector<int> rank_node_;   // node index (ctx_->nodes) of each rank
  uint64_t bytes_ = 0;
  int iter_ = 0;
  std::vector<ObjectName> inputs_;
  std::vector<uint8_t> expected_;
  ReduceResult result_;
};

}  // namespace

std::unique_ptr<Collective> MakeReduceCollective(std::string_view name, PerfContext* ctx) {
  if (name == "reduce") return std::make_unique<ReducePerf>(ctx, false, false);
  if (name == "allreduce") return std::make_unique<ReducePerf>(ctx, true, false);
  if (name == "group-allreduce") return std::make_unique<ReducePerf>(ctx, true, true);
  if (name == "reduce-subset") return std::make_unique<ReducePerf>(ctx, false, false, /*subset=*/true);
  return nullptr;
}

}  // namespace ferry::perf
