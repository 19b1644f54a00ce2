// The simulators' event queue (perf/sim/sim.cc, perf/sim/reduce_sim.cc): a binary heap for
// events at arbitrary times, plus two FIFOs for the two kinds of events whose delay is one
// constant (chunk requests after the request latency, landings after the data latency), which
// are therefore pushed in time order and need no heap. Ties at equal times run in push order,
// so a run is deterministic. Also the small helpers both simulators share.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <queue>
#include <vector>

namespace ferry::sim {

template <typename Kind>
struct SimEvent {
  double t;
  uint64_t seq;   // push order
  uint64_t b;     // the kind's second operand (a chunk, a stream, a version)
  uint32_t a;     // its first (a node, a position, a stream)
  Kind type;
};

template <typename Kind>
class EventQueue {
 public:
  using Event = SimEvent<Kind>;

  void Push(double t, Kind type, uint32_t a, uint64_t b) { heap_.push(Event{t, seq_++, b, a, type}); }
  // `which` (0 or 1): a FIFO whose events all have the same delay (the clock never goes back).
  void PushFifo(int which, double t, Kind type, uint32_t a, uint64_t b) {
    fifo_[which].push_back(Event{t, seq_++, b, a, type});
  }
  // The earliest event of the three fronts, removed; nullopt when none is left.
  std::optional<Event> Pop() {
    const Event* best = heap_.empty() ? nullptr : &heap_.top();
    int from = 0;
    for (int i = 0; i < 2; ++i) {
      if (!fifo_[i].empty() && (best == nullptr || Later{}(*best, fifo_[i].front()))) {
        best = &fifo_[i].front();
        from = i + 1;
      }
    }
    if (best == nullptr) return std::nullopt;
    const Event e = *best;
    if (from == 0) {
      heap_.pop();
    } else {
      fifo_[from - 1].pop_front();
    }
    return e;
  }

 private:
  struct Later {
    bool operator()(const Event& x, const Event& y) const { return x.t != y.t ? x.t > y.t : x.seq > y.seq; }
  };
  uint64_t seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, Later> heap_;
  std::deque<Event> fifo_[2];
};

// Removes one `x` from `v` (order not kept): the simulators' active-stream lists.
inline void EraseValue(std::vector<uint32_t>& v, uint32_t x) {
  auto it = std::find(v.begin(), v.end(), x);
  if (it != v.end()) {
    *it = v.back();
    v.pop_back();
  }
}

}  // namespace ferry::sim
