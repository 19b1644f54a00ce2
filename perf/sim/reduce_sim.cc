#include "perf/sim/reduce_sim.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "control/planner/broadcast_planner.h"
#include "control/planner/cost_model.h"
#include "control/planner/reduce_planner.h"
#include "control/planner/reduce_shape.h"
#include "perf/sim/event_queue.h"

namespace ferry::sim {
namespace {

using control::BroadcastPlanner;
using control::kNoPosition;
using control::ReducePlanner;
using control::ReduceShape;
using NodeId = uint64_t;

// ReduceCollective::kMaxChunk / kMaxWindow (control/collectives/reduce.h), mirrored so that the
// simulator links only the planner.
constexpr uint32_t kMaxReduceChunk = 1 << 20;
constexpr uint32_t kMaxReduceWindow = 4;
constexpr uint64_t kMaxTags = 1ull << 24;   // 128 MiB of tags

enum class Ev : uint8_t { kReady, kStart, kBStart, kRequest, kTx, kLand };

using Event = SimEvent<Ev>;

// One pull, sender -> receiver: a child's partial sum (src_pos) or the result (src_pos = none).
struct Stream {
  uint32_t from = 0;
  uint32_t to = 0;
  uint32_t src_pos = kNoPosition;
  uint64_t n = 0;             // chunks of the object
  uint64_t chunk = 0;
  uint64_t req_arrived = 0;   // requests for chunks < this have reached the sender
  uint64_t enq = 0;           // chunks < this are queued (or sent); the queue is [head, enq)
  uint64_t head = 0;
  uint64_t landed = 0;        // chunks < this have landed at the receiver (in order)
  uint64_t next_req = 0;
  uint32_t in_flight = 0;
  double rem = 0;             // bytes of the head chunk still to send, as of `last`
  double rate = 0;            // bytes/s while active
  double last = 0;
  uint64_t version = 0;       // invalidates scheduled kTx events
  int32_t up_slot = -1;       // index in the sender's `up` (active) list
  int32_t down_slot = -1;     // index in the receiver's `down` list
};

struct Node {
  bool ready = false;
  uint32_t pos = kNoPosition;
  std::vector<uint32_t> up;     // active streams on the uplink
  std::vector<uint32_t> down;   // active streams on the downlink
  // The result's copy (AllReduce).
  bool receiver = false;
  bool waiting = false;         // Attach said UNAVAILABLE / NOT_FOUND: retried on plan change
  bool attached_once = false;
  bool done = false;
  double done_t = 0;
  uint64_t bhave = 0;           // result chunks held (the broadcast's chunking)
  int64_t bin = -1;             // inbound broadcast stream
  std::vector<uint32_t> bout;   // outbound broadcast streams
};

struct Pos {
  uint32_t node = 0;
  bool scheduled = false;
  bool done = false;
  uint64_t comb = 0;            // chunks < comb combined
  std::vector<uint32_t> in;     // streams from the children (shape order)
  int64_t out = -1;             // stream to the parent
  std::vector<uint64_t> tag;    // per chunk: sum of Mix(input) combined (interior positions)
};

// splitmix64: a well-spread 64-bit tag per input, so that a sum of tags identifies the set.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class ReduceSim {
 public:
  explicit ReduceSim(const ReduceSimConfig& c) : cfg_(c), bplanner_(1) {}

  ReduceSimResult Run() {
    const auto wall0 = std::chrono::steady_clock::now();
    ReduceSimResult res;
    if (std::string why = Setup(res); !why.empty()) return Error(std::move(why));
    for (uint32_t id = 1; id <= cfg_.nodes; ++id) {
      const bool late = id + cfg_.late_inputs > cfg_.nodes;
      Push(late ? cfg_.late_s : 0.0, Ev::kReady, id, 0);
    }
    Loop();
    if (!error_.empty()) return Error(error_);
    Collect(res);
    res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return res;
  }

 private:
  ReduceSimResult Error(std::string why) {
    ReduceSimResult r;
    r.error = std::move(why);
    return r;
  }

  // The plans, as ReduceCollective::CreatePlanner and Directory::Publish make them. Returns
  // an error message, or "".
  std::string Setup(ReduceSimResult& res) {
    const uint32_t n_nodes = cfg_.nodes;
    if (n_nodes < 2) return "need at least 2 nodes";
    if (cfg_.size == 0) return "size must be > 0";
    if (!(cfg_.bandwidth_Bps > 0)) return "bandwidth must be > 0";
    if (cfg_.latency_s < 0) return "latency must be >= 0";
    if (cfg_.latency_data_fraction < 0 || cfg_.latency_data_fraction > 1) return "latency split must be in [0,1]";
    if (cfg_.late_inputs > n_nodes || cfg_.late_s < 0) return "late inputs must be <= nodes, late time >= 0";
    k_ = cfg_.num_objects == 0 ? n_nodes : cfg_.num_objects;
    if (k_ > n_nodes) return "num_objects must be <= nodes";
    B_ = cfg_.bandwidth_Bps;
    req_delay_ = cfg_.latency_s * (1 - cfg_.latency_data_fraction);
    data_delay_ = cfg_.latency_s * cfg_.latency_data_fraction;
    rpc_ = cfg_.rpc_s < 0 ? 2 * cfg_.latency_s : cfg_.rpc_s;
    ovh_bytes_ = cfg_.sim_chunk_overhead_s * B_;

    control::LinkModel link;
    link.bandwidth_Bps = cfg_.plan_bandwidth_Bps > 0 ? cfg_.plan_bandwidth_Bps : B_;
    link.latency_s = cfg_.plan_latency_s > 0 ? cfg_.plan_latency_s : cfg_.latency_s;
    link.chunk_overhead_s = cfg_.plan_chunk_overhead_s;
    control::PlanLimits limits;
    if (cfg_.min_chunk > 0) limits.min_chunk = cfg_.min_chunk;
    limits.max_chunk = std::min(limits.max_chunk, kMaxReduceChunk);
    limits.min_chunk = std::min(limits.min_chunk, limits.max_chunk);
    limits.fixed_chunk = std::min(cfg_.reduce_chunk, kMaxReduceChunk);
    const control::ReducePlan plan = control::PlanReduce(cfg_.size, k_, link, limits);
    const uint32_t chain = cfg_.chain_length > 0 ? cfg_.chain_length : plan.chain_length;
    std::vector<NodeId> ids(n_nodes);
    for (uint32_t i = 0; i < n_nodes; ++i) ids[i] = i + 1;
    absl::StatusOr<std::unique_ptr<ReducePlanner>> p = ReducePlanner::Create(std::move(ids), k_, chain);
    if (!p.ok()) return std::string(p.status().message());
    planner_ = *std::move(p);
    const ReduceShape& shape = planner_->shape();
    rc_ = std::min<uint64_t>(plan.chunk_size, cfg_.size);
    if (rc_ == 0) return "chunk size 0";
    n_r_ = (cfg_.size + rc_ - 1) / rc_;
    window_ = cfg_.reduce_window > 0 ? cfg_.reduce_window : std::clamp<uint32_t>(plan.window, 1, kMaxReduceWindow);
    root_ = shape.root();
    res.positions = k_;
    res.chain_length = shape.chain_length;
    res.binary_nodes = shape.binary_nodes;
    res.height = shape.height();
    res.max_fan_in = shape.max_fan_in();
    res.chunk = plan.chunk_size;
    res.window = window_;
    res.chunks = n_r_;
    res.model_s = control::PredictReduce(cfg_.size, k_, shape.chain_length, plan.chunk_size, link);
    positions_.assign(shape.positions.size(), Pos{});
    uint64_t interior = 0;
    for (const ReduceShape::Position& sp : shape.positions) interior += sp.children.empty() ? 0 : 1;
    check_ = cfg_.check_data && interior * n_r_ <= kMaxTags;
    nodes_.assign(n_nodes + 1, Node{});

    if (cfg_.all) {
      control::PlanLimits blimits;
      if (cfg_.min_chunk > 0) blimits.min_chunk = cfg_.min_chunk;
      blimits.fixed_fanout = cfg_.bcast_fanout;
      // Overlapped, ferry files the result with the reduce's chunk (Directory::PublishProducing:
      // receivers ask for the chunks the root tracks); after the root is done, the broadcast
      // plan's own.
      blimits.fixed_chunk = cfg_.bcast_chunk > 0 ? cfg_.bcast_chunk : cfg_.overlap ? static_cast<uint32_t>(rc_) : 0;
      const control::BroadcastPlan bplan = control::PlanBroadcast(cfg_.size, n_nodes - 1, link, blimits);
      bplanner_.set_fanout(bplan.fanout);
      bc_ = std::min<uint64_t>(bplan.chunk_size, cfg_.size);
      if (bc_ == 0) return "broadcast chunk size 0";
      n_b_ = (cfg_.size + bc_ - 1) / bc_;
      bwindow_ = cfg_.bcast_window > 0 ? cfg_.bcast_window : std::max<uint32_t>(bplan.window, 2);   // as ferryd
      res.bcast_fanout = bplan.fanout;
      res.bcast_chunk = bplan.chunk_size;
      res.bcast_window = bwindow_;
      res.bcast_model_s = bplan.predicted_s;
    }
    return "";
  }

  void Loop() {
    while (error_.empty()) {
      const std::optional<Event> next = events_q_.Pop();
      if (!next) break;
      const Event& e = *next;
      now_ = e.t;
      ++events_;
      switch (e.type) {
        case Ev::kReady: OnReady(e.a); break;
        case Ev::kStart: OnStart(e.a); break;
        case Ev::kBStart: OnBStart(e.a, e.b); break;
        case Ev::kRequest: OnRequest(e.a, e.b); break;
        case Ev::kTx: OnTx(e.a, e.b); break;
        case Ev::kLand: Land(e.a, e.b); break;
      }
    }
  }

  void Collect(ReduceSimResult& res) {
    const double inf = std::numeric_limits<double>::infinity();
    const Pos& root = positions_[root_];
    res.root_node = root.node;
    res.reduce_s = root.done ? reduce_done_t_ : inf;
    res.completion_s = res.reduce_s;
    if (!root.done) ++res.incomplete;
    double sum = 0;
    for (uint32_t id = 1; id < nodes_.size(); ++id) {
      const Node& node = nodes_[id];
      if (!node.receiver) continue;
      ++res.receivers;
      if (node.done) {
        ++res.completed;
        sum += node.done_t;
        res.completion_s = std::max(res.completion_s, node.done_t);
      } else {
        ++res.incomplete;
      }
    }
    if (res.incomplete > 0) res.completion_s = inf;
    res.mean_completion_s = res.completed > 0 ? sum / res.completed : 0;
    res.bcast_depth = bdepth_;
    res.planner_done = planner_->Done();
    for (NodeId u : planner_->Used()) res.used.push_back(u);
    res.data_checked = check_ && root.done;
    if (res.data_checked) res.data_error = CheckData(res.used);
    res.events = events_;
    res.chunk_transfers = transfers_;
    const double sb = static_cast<double>(cfg_.size) / B_;
    res.bound_s = cfg_.all ? 2.0 * (cfg_.nodes - 1) / cfg_.nodes * sb : sb;
  }

  // Every chunk of the result must carry exactly the tags of the planner's Used() inputs.
  std::string CheckData(const std::vector<uint64_t>& used) const {
    uint64_t want = 0;
    for (uint64_t u : used) want += Mix(u);
    if (used.size() != k_) return "the result combines " + std::to_string(used.size()) + " inputs, not " + std::to_string(k_);
    for (uint64_t c = 0; c < n_r_; ++c) {
      if (Tag(root_, c) != want) return "chunk " + std::to_string(c) + " of the result is not the sum of the used inputs";
    }
    return "";
  }

  uint64_t Tag(uint32_t pos, uint64_t c) const {
    const Pos& p = positions_[pos];
    return p.tag.empty() ? Mix(p.node) : p.tag[c];
  }

  void Push(double t, Ev type, uint32_t a, uint64_t b) { events_q_.Push(t, type, a, b); }
  // For events whose delay is the same constant for all of them (now_ never decreases).
  void PushFifo(int which, double t, Ev type, uint32_t a, uint64_t b) { events_q_.PushFifo(which, t, type, a, b); }
  bool IsLeaf(uint32_t pos) const { return planner_->shape().positions[pos].children.empty(); }
  double Bytes(const Stream& s, uint64_t k) const {
    return static_cast<double>(k + 1 < s.n ? s.chunk : cfg_.size - k * s.chunk);
  }
  uint64_t Avail(const Stream& s) const {
    return s.src_pos != kNoPosition ? positions_[s.src_pos].comb : nodes_[s.from].bhave;
  }

  // ---- inputs and positions ---------------------------------------------------------------
  void OnReady(uint32_t id) {
    nodes_[id].ready = true;
    absl::StatusOr<std::vector<ReducePlanner::Step>> steps = planner_->InputReady(id);
    if (!steps.ok()) {
      error_ = "InputReady(" + std::to_string(id) + "): " + std::string(steps.status().message());
      return;
    }
    for (const ReducePlanner::Step& step : *steps) Absorb(step);
    if (bcast_started_ && nodes_[id].receiver) Attach(id, rpc_);   // ready after the broadcast began
  }

  // As ReduceCollective::Absorb/Flush: a leaf is done at once (its partial sum is its input);
  // another position (and the root) starts pulling `rpc` after its children are all placed.
  void Absorb(const ReducePlanner::Step& step) {
    const uint32_t pos = step.position;
    Pos& p = positions_[pos];
    p.node = static_cast<uint32_t>(step.node);
    nodes_[p.node].pos = pos;
    if (IsLeaf(pos) && pos != root_) {
      if (!p.done) {
        p.comb = n_r_;
        p.done = true;
        if (absl::Status s = planner_->PositionDone(step.node); !s.ok()) error_ = std::string(s.message());
      }
      return;
    }
    const bool placed = std::all_of(step.children.begin(), step.children.end(), [](NodeId c) { return c != 0; });
    if (placed && !p.scheduled) {
      p.scheduled = true;
      if (check_ && !IsLeaf(pos)) p.tag.assign(n_r_, Mix(p.node));
      Push(now_ + rpc_, Ev::kStart, pos, 0);
    }
    if (pos == root_ && cfg_.all && cfg_.overlap && !bcast_started_) BeginBroadcast();
  }

  void OnStart(uint32_t pos) {
    Pos& p = positions_[pos];
    for (uint32_t c : planner_->shape().positions[pos].children) {
      const uint32_t sid = NewStream(positions_[c].node, p.node, c, n_r_, rc_);
      positions_[c].out = sid;
      p.in.push_back(sid);
      Issue(sid);
    }
    if (p.in.empty()) {   // a root with no children (k = 1): its result is its input
      p.comb = n_r_;
      OnCombined(pos);
    }
  }

  void OnCombined(uint32_t pos) {
    Pos& p = positions_[pos];
    if (p.out >= 0) TryEnqueue(static_cast<uint32_t>(p.out));
    if (pos == root_ && cfg_.all) {
      // The result object: broadcast chunk j is there once the bytes it covers are combined.
      Node& r = nodes_[p.node];
      const uint64_t have = p.comb == n_r_ ? n_b_ : p.comb * rc_ / bc_;
      if (have > r.bhave) {
        r.bhave = have;
        for (uint32_t o : r.bout) TryEnqueue(o);
      }
    }
    if (p.comb < n_r_ || p.done) return;
    p.done = true;
    if (absl::Status s = planner_->PositionDone(p.node); !s.ok()) {
      error_ = "PositionDone(" + std::to_string(p.node) + "): " + std::string(s.message());
      return;
    }
    if (pos != root_) return;
    reduce_done_t_ = now_;
    if (bcast_started_) bplanner_.Completed(positions_[root_].node);   // the producer's Publish
    if (cfg_.all && !bcast_started_) BeginBroadcast();
  }

  // ---- streams and links ------------------------------------------------------------------
  uint32_t NewStream(uint32_t from, uint32_t to, uint32_t src_pos, uint64_t n, uint64_t chunk) {
    Stream s;
    s.from = from;
    s.to = to;
    s.src_pos = src_pos;
    s.n = n;
    s.chunk = chunk;
    streams_.push_back(s);
    return static_cast<uint32_t>(streams_.size() - 1);
  }

  void Issue(uint32_t sid) {
    Stream& s = streams_[sid];
    const uint32_t window = s.src_pos != kNoPosition ? window_ : bwindow_;
    while (s.in_flight < window && s.next_req < s.n) {
      PushFifo(0, now_ + req_delay_, Ev::kRequest, sid, s.next_req++);
      ++s.in_flight;
    }
  }

  void OnRequest(uint32_t sid, uint64_t k) {
    Stream& s = streams_[sid];
    s.req_arrived = std::max(s.req_arrived, k + 1);
    TryEnqueue(sid);
  }

  // Queues the chunks that are requested and present at the sender (cut-through).
  void TryEnqueue(uint32_t sid) {
    Stream& s = streams_[sid];
    const uint64_t avail = std::min(s.req_arrived, Avail(s));
    if (avail <= s.enq) return;
    const bool was_empty = s.head == s.enq;
    s.enq = avail;
    if (!was_empty) return;
    s.rem = Bytes(s, s.head) + ovh_bytes_;
    s.rate = 0;
    s.last = now_;
    std::vector<uint32_t>& up = nodes_[s.from].up;
    std::vector<uint32_t>& down = nodes_[s.to].down;
    s.up_slot = static_cast<int32_t>(up.size());
    s.down_slot = static_cast<int32_t>(down.size());
    up.push_back(sid);
    down.push_back(sid);
    Rerate(s.from, s.to);
  }

  void Deactivate(uint32_t sid) {
    Stream& s = streams_[sid];
    RemoveSlot(nodes_[s.from].up, s.up_slot, /*up=*/true);
    RemoveSlot(nodes_[s.to].down, s.down_slot, /*up=*/false);
    s.rate = 0;
    ++s.version;
    Rerate(s.from, s.to);
  }

  void RemoveSlot(std::vector<uint32_t>& list, int32_t& slot, bool up) {
    const uint32_t moved = list.back();
    list[slot] = moved;
    (up ? streams_[moved].up_slot : streams_[moved].down_slot) = slot;
    list.pop_back();
    slot = -1;
  }

  // The active streams at `up_node`'s uplink or `down_node`'s downlink changed.
  void Rerate(uint32_t up_node, uint32_t down_node) {
    if (!cfg_.reduce_first) {
      for (uint32_t x : nodes_[up_node].up) SetRate(x, FairRate(streams_[x]));
      for (uint32_t x : nodes_[down_node].down) SetRate(x, FairRate(streams_[x]));
      return;
    }
    // Partial sums first; a partial-sum stream whose rate changed changes what is left for the
    // result's streams at its other end too.
    touched_up_.assign(1, up_node);
    touched_down_.assign(1, down_node);
    auto reduce_first = [this](uint32_t x) {
      const Stream& s = streams_[x];
      if (s.src_pos == kNoPosition || !SetRate(x, PartialRate(s))) return;
      touched_up_.push_back(s.from);
      touched_down_.push_back(s.to);
    };
    for (uint32_t x : nodes_[up_node].up) reduce_first(x);
    for (uint32_t x : nodes_[down_node].down) reduce_first(x);
    for (uint32_t n : touched_up_) {
      for (uint32_t x : nodes_[n].up) {
        if (streams_[x].src_pos == kNoPosition) SetRate(x, ResultRate(streams_[x]));
      }
    }
    for (uint32_t n : touched_down_) {
      for (uint32_t x : nodes_[n].down) {
        if (streams_[x].src_pos == kNoPosition) SetRate(x, ResultRate(streams_[x]));
      }
    }
  }

  double FairRate(const Stream& s) const {
    return B_ / static_cast<double>(std::max(nodes_[s.from].up.size(), nodes_[s.to].down.size()));
  }
  // reduce_first: partial-sum streams share the links among themselves only.
  double PartialRate(const Stream& s) const {
    auto count = [this](const std::vector<uint32_t>& list) {
      size_t n = 0;
      for (uint32_t x : list) n += streams_[x].src_pos != kNoPosition ? 1 : 0;
      return n;
    };
    return B_ / static_cast<double>(std::max(count(nodes_[s.from].up), count(nodes_[s.to].down)));
  }
  // reduce_first: the result's streams share what the partial sums leave of each link.
  double ResultRate(const Stream& s) const {
    auto left = [this](const std::vector<uint32_t>& list) {
      double used = 0;
      size_t n = 0;
      for (uint32_t x : list) {
        if (streams_[x].src_pos != kNoPosition) {
          used += streams_[x].rate;
        } else {
          ++n;
        }
      }
      const double rest = B_ - used;
      return rest > 1e-9 * B_ ? rest / static_cast<double>(n) : 0.0;
    };
    return std::min(left(nodes_[s.from].up), left(nodes_[s.to].down));
  }

  // Returns whether the rate changed; a stream at rate 0 has no kTx scheduled.
  bool SetRate(uint32_t sid, double rate) {
    Stream& s = streams_[sid];
    if (rate == s.rate) return false;
    s.rem -= (now_ - s.last) * s.rate;
    s.last = now_;
    s.rate = rate;
    ++s.version;
    if (rate > 0) Push(now_ + std::max(s.rem, 0.0) / rate, Ev::kTx, sid, s.version);
    return true;
  }

  void OnTx(uint32_t sid, uint64_t version) {
    Stream& s = streams_[sid];
    if (version != s.version || s.up_slot < 0) return;
    const uint64_t k = s.head++;
    ++transfers_;
    if (Avail(s) <= k) {
      error_ = "internal: chunk " + std::to_string(k) + " sent by node " + std::to_string(s.from) + " before it had it";
      return;
    }
    if (s.head < s.enq) {
      s.rem = Bytes(s, s.head) + ovh_bytes_;
      s.last = now_;
      Push(now_ + s.rem / s.rate, Ev::kTx, sid, s.version);
    } else {
      Deactivate(sid);
    }
    if (data_delay_ > 0) {
      PushFifo(1, now_ + data_delay_, Ev::kLand, sid, k);
    } else {
      Land(sid, k);
    }
  }

  void Land(uint32_t sid, uint64_t k) {
    Stream& s = streams_[sid];
    if (k != s.landed) {
      error_ = "internal: chunk " + std::to_string(k) + " landed out of order at node " + std::to_string(s.to);
      return;
    }
    ++s.landed;
    --s.in_flight;
    if (s.src_pos == kNoPosition) {
      LandResult(sid);
      return;
    }
    const uint32_t pos = nodes_[s.to].pos;
    Pos& p = positions_[pos];
    if (check_) p.tag[k] += Tag(s.src_pos, k);
    uint64_t m = n_r_;
    for (uint32_t in : p.in) m = std::min(m, streams_[in].landed);
    Issue(sid);
    if (m > p.comb) {
      p.comb = m;
      OnCombined(pos);
    }
  }

  // ---- AllReduce: the broadcast of the result ---------------------------------------------
  void BeginBroadcast() {
    bcast_started_ = true;
    const uint32_t root = positions_[root_].node;
    // As the coordinator files it (Directory::PublishProducing): while the root still combines
    // the result it is a producing copy, complete once it is done.
    if (positions_[root_].done) {
      bplanner_.AddComplete(root);
    } else {
      bplanner_.AddProducer(root);
    }
    for (uint32_t id = 1; id < nodes_.size(); ++id) {
      if (id == root) continue;
      nodes_[id].receiver = true;
      if (nodes_[id].ready) Attach(id, rpc_);
    }
  }

  void LandResult(uint32_t sid) {
    Stream& s = streams_[sid];
    Node& r = nodes_[s.to];
    ++r.bhave;
    for (uint32_t o : r.bout) TryEnqueue(o);   // cut-through: serve it to our own receivers
    if (r.bhave < n_b_) {
      Issue(sid);
      return;
    }
    r.done = true;
    r.done_t = now_;
    bplanner_.Completed(s.to);
    EraseValue(nodes_[s.from].bout, sid);
    r.bin = -1;
    PlanChanged();
  }

  // Acquire at the coordinator; pulling starts `start_delay` later (the reply's trip).
  void Attach(uint32_t rid, double start_delay) {
    Node& r = nodes_[rid];
    if (r.done || r.bin >= 0) return;
    absl::StatusOr<NodeId> sender = bplanner_.Attach(rid);
    if (!sender.ok()) {
      const absl::StatusCode code = sender.status().code();
      if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kNotFound) {
        if (!r.waiting) {
          r.waiting = true;
          waiting_.push_back(rid);
        }
        return;
      }
      error_ = "Attach(" + std::to_string(rid) + "): " + std::string(sender.status().message());
      return;
    }
    const uint32_t from = static_cast<uint32_t>(*sender);
    const uint32_t sid = NewStream(from, rid, kNoPosition, n_b_, bc_);
    Stream& s = streams_[sid];
    s.req_arrived = s.enq = s.head = s.landed = s.next_req = r.bhave;
    nodes_[from].bout.push_back(sid);
    r.bin = sid;
    if (!r.attached_once) {
      r.attached_once = true;
      bdepth_ = std::max(bdepth_, bplanner_.copies().at(rid).depth);
    }
    Push(now_ + start_delay, Ev::kBStart, rid, sid);
  }

  void OnBStart(uint32_t rid, uint64_t sid) {
    if (nodes_[rid].bin == static_cast<int64_t>(sid)) Issue(static_cast<uint32_t>(sid));
  }

  void PlanChanged() {
    if (waiting_.empty()) return;
    std::vector<uint32_t> w;
    w.swap(waiting_);
    for (uint32_t id : w) {
      nodes_[id].waiting = false;
      Attach(id, rpc_ / 2);   // the coordinator's Acquire loop wakes; the reply travels back
    }
  }

  const ReduceSimConfig cfg_;
  std::unique_ptr<ReducePlanner> planner_;
  BroadcastPlanner bplanner_;
  uint32_t k_ = 0, root_ = 0, window_ = 0, bwindow_ = 0, bdepth_ = 0;
  uint64_t rc_ = 0, n_r_ = 0, bc_ = 0, n_b_ = 0;
  double B_ = 0, rpc_ = 0, ovh_bytes_ = 0, req_delay_ = 0, data_delay_ = 0;
  bool check_ = false, bcast_started_ = false;
  double now_ = 0, reduce_done_t_ = 0;
  uint64_t events_ = 0, transfers_ = 0;
  EventQueue<Ev> events_q_;   // FIFO 0: chunk requests (delay req_delay_), 1: landings (data_delay_)
  std::vector<Node> nodes_;
  std::vector<Pos> positions_;
  std::vector<Stream> streams_;
  std::vector<uint32_t> waiting_;
  std::vector<uint32_t> touched_up_, touched_down_;   // Rerate's scratch (reduce_first)
  std::string error_;
};

}  // namespace

ReduceSimResult SimulateReduce(const ReduceSimConfig& config) { return ReduceSim(config).Run(); }

}  // namespace ferry::sim
