#include "perf/sim/sim.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "control/planner/broadcast_planner.h"
#include "control/planner/cost_model.h"
#include "perf/sim/event_queue.h"

namespace ferry::sim {
namespace {

using control::BroadcastPlanner;
using NodeId = uint64_t;

enum class Ev : uint8_t { kArrive, kStart, kRequest, kTx, kLand, kFail, kDetect };

using Event = SimEvent<Ev>;

// One pull: receiver <- sender, FIFO like the TCP stream it runs on.
struct Conn {
  uint32_t sender = 0;
  uint32_t receiver = 0;
  bool alive = true;
  uint64_t req_arrived = 0;   // requests for chunks < this have reached the sender
  uint64_t enq = 0;           // chunks < this are queued for sending (or sent)
  uint64_t head = 0;          // next chunk to send; the queue is [head, enq)
  double rem = 0;             // bytes of the head chunk still to send
  std::deque<double> ready;   // when each queued chunk became ready (FIFO sharing)
};

struct Node {
  bool alive = true;
  bool done = false;
  bool waiting = false;       // Attach said UNAVAILABLE / NOT_FOUND: retried on plan change
  bool attached_once = false;
  double done_t = 0;
  uint64_t have = 0;          // chunks < have have landed (they land in order)
  int64_t conn = -1;          // inbound connection
  uint64_t next_req = 0;
  uint32_t in_flight = 0;
  std::vector<uint32_t> out;  // live outgoing connections
  // Uplink.
  std::vector<uint32_t> active;   // outgoing connections with data queued
  int64_t cur = -1;               // FIFO sharing: the connection being served
  double last = 0;                // time `rem`s were last advanced to
  uint64_t version = 0;           // invalidates scheduled kTx events
  absl::flat_hash_set<NodeId> exclude;
};

class Sim {
 public:
  explicit Sim(const SimConfig& c) : cfg_(c), planner_(1) {}

  SimResult Run() {
    const auto wall0 = std::chrono::steady_clock::now();
    SimResult res;
    const uint32_t n_nodes = cfg_.nodes;
    if (n_nodes < 2) return Error("need at least 2 nodes");
    if (cfg_.size == 0) return Error("size must be > 0");
    if (!(cfg_.bandwidth_Bps > 0)) return Error("bandwidth must be > 0");
    if (cfg_.latency_s < 0 || cfg_.detect_s < 0) return Error("latency and detect must be >= 0");
    if (cfg_.latency_data_fraction < 0 || cfg_.latency_data_fraction > 1) return Error("latency split must be in [0,1]");
    B_ = cfg_.bandwidth_Bps;
    L_ = cfg_.latency_s;
    req_delay_ = L_ * (1 - cfg_.latency_data_fraction);
    data_delay_ = L_ * cfg_.latency_data_fraction;
    rpc_ = cfg_.rpc_s < 0 ? 2 * L_ : cfg_.rpc_s;
    fair_ = cfg_.sharing == LinkSharing::kFair;
    ovh_bytes_ = cfg_.sim_chunk_overhead_s * B_;

    // Plan exactly as the coordinator does (Directory::Publish): receivers = N - 1.
    control::LinkModel link;
    link.bandwidth_Bps = cfg_.plan_bandwidth_Bps > 0 ? cfg_.plan_bandwidth_Bps : B_;
    link.latency_s = cfg_.plan_latency_s > 0 ? cfg_.plan_latency_s : L_;
    link.chunk_overhead_s = cfg_.plan_chunk_overhead_s;
    control::PlanLimits limits;
    limits.fixed_fanout = cfg_.fixed_fanout;
    limits.fixed_chunk = cfg_.fixed_chunk;
    const control::BroadcastPlan plan = control::PlanBroadcast(cfg_.size, n_nodes - 1, link, limits);
    planner_.set_fanout(plan.fanout);
    chunk_ = std::min<uint64_t>(plan.chunk_size, cfg_.size);
    if (chunk_ == 0) return Error("chunk size 0");
    window_ = cfg_.window > 0 ? cfg_.window : std::max<uint32_t>(plan.window, 2);   // as ferryd does
    n_ = (cfg_.size + chunk_ - 1) / chunk_;
    res.fanout = plan.fanout;
    res.chunk = plan.chunk_size;
    res.window = window_;
    res.chunks = n_;
    res.model_s = plan.predicted_s;
    res.model_depth = control::TreeDepth(n_nodes - 1, plan.fanout);

    nodes_.assign(n_nodes + 1, Node{});
    nodes_[0].alive = false;   // NodeId 0 means "none" to the planner
    Node& src = nodes_[1];
    src.have = n_;
    src.done = true;
    planner_.AddComplete(1);

    std::mt19937_64 rng(cfg_.seed);
    std::uniform_real_distribution<double> spread(0, std::max(cfg_.arrival_spread_s, 0.0));
    for (uint32_t r = 2; r <= n_nodes; ++r) {
      Push(cfg_.arrival_spread_s > 0 ? spread(rng) : 0.0, Ev::kArrive, r, 0);
    }
    for (const Failure& f : cfg_.failures) {
      if (f.node > n_nodes) return Error("failure of node " + std::to_string(f.node) + " > N");
      Push(f.time_s, Ev::kFail, static_cast<uint32_t>(f.node), 0);
    }

    while (true) {
      const std::optional<Event> next = events_q_.Pop();
      if (!next) break;
      const Event& e = *next;
      now_ = e.t;
      ++events_;
      switch (e.type) {
        case Ev::kArrive: Attach(e.a, rpc_); break;
        case Ev::kStart: OnStart(e.a, e.b); break;
        case Ev::kRequest: OnRequest(e.a, e.b); break;
        case Ev::kTx: OnTx(e.a, e.b); break;
        case Ev::kLand: Land(conns_[e.a].receiver, e.b, e.a); break;
        case Ev::kFail: OnFail(e.a); break;
        case Ev::kDetect: OnDetect(e.a); break;
      }
      if (!error_.empty()) return Error(error_);
    }

    double sum = 0;
    for (uint32_t r = 2; r <= n_nodes; ++r) {
      const Node& node = nodes_[r];
      if (!node.alive) continue;
      if (node.done) {
        ++res.completed;
        sum += node.done_t;
        res.completion_s = std::max(res.completion_s, node.done_t);
      } else {
        ++res.incomplete;
      }
    }
    if (res.incomplete > 0) res.completion_s = std::numeric_limits<double>::infinity();
    res.mean_completion_s = res.completed > 0 ? sum / res.completed : 0;
    res.max_depth = max_depth_;
    res.failed_nodes = static_cast<uint32_t>(failed_ids_.size());
    res.failed_ids = failed_ids_;
    res.reattaches = reattaches_;
    res.attach_waits = attach_waits_;
    res.events = events_;
    res.chunk_transfers = transfers_;
    res.bound_s = static_cast<double>(cfg_.size) / B_;
    const double d = std::max<uint32_t>(max_depth_, 1);
    res.fill_bound_s = res.bound_s + (d - 1) * static_cast<double>(chunk_) / B_ + d * L_;
    res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return res;
  }

 private:
  SimResult Error(std::string why) {
    SimResult r;
    r.error = std::move(why);
    return r;
  }

  void Push(double t, Ev type, uint32_t a, uint64_t b) { events_q_.Push(t, type, a, b); }
  // For events whose delay is the same constant for all of them (now_ never decreases).
  void PushFifo(int which, double t, Ev type, uint32_t a, uint64_t b) { events_q_.PushFifo(which, t, type, a, b); }

  double ChunkBytes(uint64_t k) const {
    return static_cast<double>(k + 1 < n_ ? chunk_ : cfg_.size - k * chunk_);
  }

  // ---- uplink of one node ----------------------------------------------------------------
  void Advance(Node& s) {
    const double dt = now_ - s.last;
    s.last = now_;
    if (dt <= 0 || s.active.empty()) return;
    if (fair_) {
      const double dv = dt * B_ / static_cast<double>(s.active.size());
      for (uint32_t c : s.active) conns_[c].rem -= dv;
    } else if (s.cur >= 0) {
      conns_[s.cur].rem -= dt * B_;
    }
  }

  void Reschedule(uint32_t sid) {
    Node& s = nodes_[sid];
    ++s.version;
    if (s.active.empty() || !s.alive) return;
    double dt;
    if (fair_) {
      double m = std::numeric_limits<double>::infinity();
      for (uint32_t c : s.active) m = std::min(m, conns_[c].rem);
      dt = std::max(m, 0.0) * static_cast<double>(s.active.size()) / B_;
    } else {
      if (s.cur < 0) {
        // Serve the connection whose head chunk became ready first (ties: lowest id).
        for (uint32_t c : s.active) {
          if (s.cur < 0 || conns_[c].ready.front() < conns_[s.cur].ready.front() ||
              (conns_[c].ready.front() == conns_[s.cur].ready.front() && c < s.cur)) {
            s.cur = c;
          }
        }
      }
      dt = std::max(conns_[s.cur].rem, 0.0) / B_;
    }
    Push(now_ + dt, Ev::kTx, sid, s.version);
  }

  // Moves chunks that are requested and present at the sender into the connection's queue.
  void TryEnqueue(uint32_t cid) {
    Conn& c = conns_[cid];
    Node& s = nodes_[c.sender];
    if (!c.alive || !s.alive) return;
    const uint64_t avail = std::min(c.req_arrived, s.have);
    if (avail <= c.enq) return;
    const bool was_empty = c.head == c.enq;
    if (!fair_) {
      for (uint64_t k = c.enq; k < avail; ++k) c.ready.push_back(now_);
    }
    c.enq = avail;
    if (was_empty) {
      Advance(s);
      c.rem = ChunkBytes(c.head) + ovh_bytes_;
      s.active.push_back(cid);
      Reschedule(c.sender);
    }
  }

  void OnTx(uint32_t sid, uint64_t version) {
    Node& s = nodes_[sid];
    if (!s.alive || version != s.version || s.active.empty()) return;
    Advance(s);
    uint32_t cid;
    if (fair_) {
      cid = s.active[0];
      for (uint32_t c : s.active) {
        if (conns_[c].rem < conns_[cid].rem) cid = c;
      }
    } else {
      cid = static_cast<uint32_t>(s.cur);
      s.cur = -1;
    }
    Conn& c = conns_[cid];
    const uint64_t k = c.head++;
    if (!fair_) c.ready.pop_front();
    if (c.head < c.enq) {
      c.rem = ChunkBytes(c.head) + ovh_bytes_;
    } else {
      EraseValue(s.active, cid);
    }
    Reschedule(sid);
    ++transfers_;
    if (data_delay_ > 0) {
      PushFifo(1, now_ + data_delay_, Ev::kLand, cid, k);
    } else {
      Land(c.receiver, k, cid);
    }
  }

  // ---- receiver ---------------------------------------------------------------------------
  void Land(uint32_t rid, uint64_t k, uint32_t cid) {
    Node& r = nodes_[rid];
    if (!r.alive || r.conn != static_cast<int64_t>(cid)) return;
    if (k != r.have) {
      error_ = "internal: chunk " + std::to_string(k) + " landed out of order at node " + std::to_string(rid);
      return;
    }
    ++r.have;
    --r.in_flight;
    for (uint32_t o : r.out) TryEnqueue(o);   // cut-through: serve k to our own receivers
    if (r.have == n_) {
      r.done = true;
      r.done_t = now_;
      planner_.Completed(rid);
      conns_[cid].alive = false;
      EraseValue(nodes_[conns_[cid].sender].out, cid);
      r.conn = -1;
      PlanChanged();
    } else {
      Issue(rid);
    }
  }

  void Issue(uint32_t rid) {
    Node& r = nodes_[rid];
    while (r.in_flight < window_ && r.next_req < n_) {
      PushFifo(0, now_ + req_delay_, Ev::kRequest, static_cast<uint32_t>(r.conn), r.next_req++);
      ++r.in_flight;
    }
  }

  void OnRequest(uint32_t cid, uint64_t k) {
    Conn& c = conns_[cid];
    if (!c.alive) return;
    c.req_arrived = std::max(c.req_arrived, k + 1);
    TryEnqueue(cid);
  }

  void OnStart(uint32_t rid, uint64_t cid) {
    Node& r = nodes_[rid];
    if (!r.alive || r.conn != static_cast<int64_t>(cid) || !conns_[cid].alive) return;
    Issue(rid);
  }

  // Acquire at the coordinator; pulling starts `start_delay` later (the reply's trip).
  void Attach(uint32_t rid, double start_delay) {
    Node& r = nodes_[rid];
    if (!r.alive || r.done || r.conn >= 0) return;
    absl::StatusOr<NodeId> s = planner_.Attach(rid, r.exclude);
    if (!s.ok()) {
      const absl::StatusCode code = s.status().code();
      if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kNotFound) {
        ++attach_waits_;
        if (!r.waiting) {
          r.waiting = true;
          waiting_.push_back(rid);
        }
        return;
      }
      error_ = "Attach(" + std::to_string(rid) + "): " + std::string(s.status().message());
      return;
    }
    const uint32_t sid = static_cast<uint32_t>(*s);
    const uint32_t cid = static_cast<uint32_t>(conns_.size());
    Conn c;
    c.sender = sid;
    c.receiver = rid;
    c.req_arrived = c.enq = c.head = r.have;
    conns_.push_back(std::move(c));
    nodes_[sid].out.push_back(cid);
    r.conn = cid;
    r.next_req = r.have;
    r.in_flight = 0;
    if (!r.attached_once) {
      r.attached_once = true;
      max_depth_ = std::max(max_depth_, planner_.copies().at(rid).depth);
    }
    Push(now_ + start_delay, Ev::kStart, rid, cid);
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

  // ---- failures ---------------------------------------------------------------------------
  uint32_t PickMid() {
    // An interior node: live, incomplete, serving someone, depth closest to half the deepest.
    uint32_t maxd = 0;
    for (const auto& [id, c] : planner_.copies()) {
      if (!c.complete && c.depth != BroadcastPlanner::kUnrooted) maxd = std::max(maxd, c.depth);
    }
    uint32_t best = 0;
    double best_dist = 0;
    for (const auto& [id, c] : planner_.copies()) {
      if (c.complete || c.serving == 0 || c.depth == BroadcastPlanner::kUnrooted || !nodes_[id].alive) continue;
      const double dist = std::abs(static_cast<double>(c.depth) - maxd / 2.0);
      if (best == 0 || dist < best_dist) {
        best = static_cast<uint32_t>(id);
        best_dist = dist;
      }
    }
    return best;
  }

  void OnFail(uint32_t fid) {
    if (fid == 0) fid = PickMid();
    if (fid == 0 || !nodes_[fid].alive) return;
    Node& f = nodes_[fid];
    f.alive = false;
    failed_ids_.push_back(fid);
    // Its uplink stops; its receivers notice after detect_s.
    f.active.clear();
    f.cur = -1;
    ++f.version;
    for (uint32_t o : f.out) conns_[o].alive = false;
    f.out.clear();
    // Its own pull stops; the sender's uplink is freed at once (connection reset).
    if (f.conn >= 0) {
      const uint32_t cid = static_cast<uint32_t>(f.conn);
      Conn& c = conns_[cid];
      c.alive = false;
      Node& s = nodes_[c.sender];
      EraseValue(s.out, cid);
      if (s.alive) {
        Advance(s);
        const size_t before = s.active.size();
        EraseValue(s.active, cid);
        if (s.cur == static_cast<int64_t>(cid)) s.cur = -1;
        if (s.active.size() != before) Reschedule(c.sender);
      }
      f.conn = -1;
    }
    Push(now_ + cfg_.detect_s, Ev::kDetect, fid, 0);
  }

  void OnDetect(uint32_t fid) {
    // The coordinator drops the dead node's copy; each receiver pulling from it reports
    // SENDER_FAILED (Detach keep_partial), excludes it and re-Acquires, resuming from the
    // chunks it has.
    planner_.RemoveNode(fid);
    for (uint32_t rid = 2; rid < nodes_.size(); ++rid) {
      Node& r = nodes_[rid];
      if (!r.alive || r.done || r.conn < 0 || conns_[r.conn].sender != fid) continue;
      planner_.Detach(rid, /*keep_partial=*/true);
      r.exclude.insert(fid);
      r.conn = -1;
      r.in_flight = 0;
      r.next_req = r.have;
      ++reattaches_;
      Attach(rid, rpc_);
    }
    PlanChanged();
  }

  SimConfig cfg_;
  BroadcastPlanner planner_;
  double B_ = 0, L_ = 0, rpc_ = 0, ovh_bytes_ = 0, req_delay_ = 0, data_delay_ = 0;
  bool fair_ = true;
  uint64_t chunk_ = 0, n_ = 0;
  uint32_t window_ = 0;
  double now_ = 0;
  EventQueue<Ev> events_q_;   // FIFO 0: chunk requests (delay req_delay_), 1: landings (data_delay_)
  std::vector<Node> nodes_;
  std::vector<Conn> conns_;
  std::vector<uint32_t> waiting_;
  std::vector<uint64_t> failed_ids_;
  uint32_t max_depth_ = 0, reattaches_ = 0, attach_waits_ = 0;
  uint64_t events_ = 0, transfers_ = 0;
  std::string error_;
};

}  // namespace

SimResult Simulate(const SimConfig& config) { return Sim(config).Run(); }

}  // namespace ferry::sim
