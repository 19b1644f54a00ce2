// DeadlineQueue: keys ordered by a deadline, earliest first. The coordinator keeps two: node
// liveness (a node's deadline is its last heartbeat plus the liveness timeout) and waiting
// calls (each call's deadline). One thread sleeps until the earliest deadline of both; Set
// says when the earliest deadline moved earlier, which is the only change that thread must be
// woken for (a later one it finds when it wakes).
//
// Pure logic, no locking: the owner serialises calls (the Coordinator, under its lock).
// Set, Erase: O(log n). Next: O(1).
#pragma once

#include <cstddef>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace ferry::control {

template <typename K>
class DeadlineQueue {
 public:
  // Sets `key`'s deadline to `at` (adding the key, or moving it). Returns true if the earliest
  // deadline of the queue is now earlier than before (or the queue was empty): whoever sleeps
  // until Next() must be woken.
  bool Set(const K& key, absl::Time at) {
    const absl::Time before = Next();
    auto it = at_.find(key);
    if (it != at_.end()) {
      order_.erase({it->second, key});
      it->second = at;
    } else {
      at_.emplace(key, at);
    }
    order_.emplace(at, key);
    return at < before;
  }

  // Removes `key` (nothing if absent). The earliest deadline never gets earlier by this.
  void Erase(const K& key) {
    auto it = at_.find(key);
    if (it == at_.end()) return;
    order_.erase({it->second, key});
    at_.erase(it);
  }

  // The earliest deadline; InfiniteFuture when empty.
  absl::Time Next() const { return order_.empty() ? absl::InfiniteFuture() : order_.begin()->first; }

  // Removes and returns, earliest first, every key whose deadline is at or before `now`.
  std::vector<K> PopExpired(absl::Time now) {
    std::vector<K> out;
    while (!order_.empty() && order_.begin()->first <= now) {
      out.push_back(order_.begin()->second);
      at_.erase(order_.begin()->second);
      order_.erase(order_.begin());
    }
    return out;
  }

  bool Contains(const K& key) const { return at_.contains(key); }
  size_t size() const { return at_.size(); }
  bool empty() const { return at_.empty(); }

 private:
  std::set<std::pair<absl::Time, K>> order_;   // (deadline, key): earliest first, ties by key
  absl::flat_hash_map<K, absl::Time> at_;      // key -> its entry in order_
};

}  // namespace ferry::control
