#include "control/placement/wait_queue.h"

namespace ferry::control::placement {

void WaitQueue::Push(Waiter waiter) {
  const RequestId id = waiter.id;
  const OrderKey key{-static_cast<int64_t>(waiter.request.priority), arrivals_++, id};
  for (ResourceId r : waiter.resolved.resources) ++wanted_[r][waiter.request.priority];
  deadlines_.Set(id, waiter.request.deadline);
  order_.insert(key);
  waiters_.emplace(id, Entry{std::move(waiter), key});
}

std::optional<Waiter> WaitQueue::Remove(RequestId id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return std::nullopt;
  Waiter w = std::move(it->second.waiter);
  order_.erase(it->second.key);
  waiters_.erase(it);
  deadlines_.Erase(id);
  for (ResourceId r : w.resolved.resources) {
    auto res = wanted_.find(r);
    auto prio = res->second.find(w.request.priority);
    if (--prio->second == 0) res->second.erase(prio);
    if (res->second.empty()) wanted_.erase(res);
  }
  return w;
}

Waiter* WaitQueue::Find(RequestId id) {
  auto it = waiters_.find(id);
  return it == waiters_.end() ? nullptr : &it->second.waiter;
}

bool WaitQueue::Blocks(const std::vector<ResourceId>& resources, int32_t priority) const {
  if (wanted_.empty()) return false;
  for (ResourceId r : resources) {
    auto it = wanted_.find(r);
    if (it != wanted_.end() && it->second.rbegin()->first >= priority) return true;
  }
  return false;
}

bool WaitQueue::Wants(const std::vector<ResourceId>& resources) const {
  if (wanted_.empty()) return false;
  for (ResourceId r : resources) {
    if (wanted_.contains(r)) return true;
  }
  return false;
}

std::vector<RequestId> WaitQueue::InOrder() const {
  std::vector<RequestId> out;
  out.reserve(order_.size());
  for (const auto& [neg_priority, arrival, id] : order_) out.push_back(id);
  return out;
}

}  // namespace ferry::control::placement
