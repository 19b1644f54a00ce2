// Operations: the collective operations in progress, by operation id, with the waiter of the
// call that started each (polled after the events that reach the operation), and an index from
// object key to operations (for reports with op_id 0 and directory changes).
//
// Pure bookkeeping, no locking: the Coordinator calls it under its lock.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <vector>

#include "control/collectives/collective.h"
#include "control/waiter.h"

namespace ferry::control {

class Operations {
 public:
  // A fresh operation id (never 0; one space for every kind of operation).
  OpId NextId() { return next_id_++; }
  // Files `op`; `waiter` (may be null: nobody waits) is polled for it.
  Collective* Add(std::unique_ptr<Collective> op, Waiter* waiter);
  // Removes the operation (nothing if absent); returns it.
  std::unique_ptr<Collective> Remove(OpId id);
  Collective* Find(OpId id) const;
  Waiter* WaiterOf(OpId id) const;

  // Where a report goes: its op_id's operation (none if that is unknown: it ended), or with
  // op_id 0 every operation on the report's object.
  std::vector<Collective*> ForReport(const proto::ReportTransferRequest& report) const;
  // Every operation on `key`.
  std::vector<Collective*> ForKey(const Directory::Key& key) const;
  // Every operation.
  std::vector<Collective*> All() const;
  size_t size() const { return ops_.size(); }

 private:
  struct Entry {
    std::unique_ptr<Collective> op;
    Waiter* waiter = nullptr;
  };
  OpId next_id_ = 1;
  std::map<OpId, Entry> ops_;
  std::map<Directory::Key, std::set<OpId>> by_key_;   // no empty sets
};

}  // namespace ferry::control
