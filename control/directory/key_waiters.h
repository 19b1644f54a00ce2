// KeyWaiters: the waiting calls that wait for something about one object key (AcquireSource:
// the key to appear or a sender to free up; Locate: the key to appear). Whoever changes a key
// (Publish, Unpublish, ReportTransfer, Delete) polls that key's waiters; a node death polls all.
// A call registers for the time it waits with one Registration (RAII): filed on construction,
// removed on destruction or Reset.
//
// Pure bookkeeping, no locking: every method, and a Registration's construction, Reset and
// destruction, runs under the owner's lock (the Coordinator's).
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control/waiter.h"

namespace ferry::control {

class KeyWaiters {
 public:
  using Key = std::pair<std::string, std::string>;   // (namespace, key), as Directory::Key

  // One call's registration on one key.
  class Registration {
   public:
    Registration() = default;
    Registration(KeyWaiters* set, Key key, Waiter* waiter);
    ~Registration() { Reset(); }
    Registration(Registration&& o) noexcept { *this = std::move(o); }
    Registration& operator=(Registration&& o) noexcept;
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    // Leaves the set (idempotent).
    void Reset();
    bool active() const { return set_ != nullptr; }

   private:
    KeyWaiters* set_ = nullptr;
    Key key_;
    Waiter* waiter_ = nullptr;
  };

  // The waiters of `key` (a copy: polling one may remove it).
  std::vector<Waiter*> Of(const Key& key) const;
  // Every registered waiter (a copy).
  std::vector<Waiter*> All() const;
  size_t keys() const { return waiters_.size(); }

 private:
  std::map<Key, std::set<Waiter*>> waiters_;   // no empty sets
};

}  // namespace ferry::control
