#include "control/directory/key_waiters.h"

namespace ferry::control {

KeyWaiters::Registration::Registration(KeyWaiters* set, Key key, Waiter* waiter)
    : set_(set), key_(std::move(key)), waiter_(waiter) {
  set_->waiters_[key_].insert(waiter_);
}

KeyWaiters::Registration& KeyWaiters::Registration::operator=(Registration&& o) noexcept {
  if (this == &o) return *this;
  Reset();
  set_ = o.set_;
  key_ = std::move(o.key_);
  waiter_ = o.waiter_;
  o.set_ = nullptr;
  o.waiter_ = nullptr;
  return *this;
}

void KeyWaiters::Registration::Reset() {
  if (set_ == nullptr) return;
  auto it = set_->waiters_.find(key_);
  if (it != set_->waiters_.end()) {
    it->second.erase(waiter_);
    if (it->second.empty()) set_->waiters_.erase(it);
  }
  set_ = nullptr;
  waiter_ = nullptr;
}

std::vector<Waiter*> KeyWaiters::Of(const Key& key) const {
  auto it = waiters_.find(key);
  if (it == waiters_.end()) return {};
  return std::vector<Waiter*>(it->second.begin(), it->second.end());
}

std::vector<Waiter*> KeyWaiters::All() const {
  std::vector<Waiter*> out;
  for (const auto& [key, set] : waiters_) out.insert(out.end(), set.begin(), set.end());
  return out;
}

}  // namespace ferry::control
