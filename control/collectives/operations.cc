#include "control/collectives/operations.h"

#include <random>

namespace ferry::control {

uint64_t NewIncarnation() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = ((static_cast<uint64_t>(rd()) << 32) ^ rd()) >> 1;
  return v;
}

Instruction MakeInstruction(NodeId node, proto::CoordMessage msg) {
  auto shared = std::make_shared<const proto::CoordMessage>(std::move(msg));
  const size_t bytes = shared->ByteSizeLong();
  return Instruction{node, std::move(shared), bytes};
}

Collective* Operations::Add(std::unique_ptr<Collective> op, Waiter* waiter) {
  Collective* raw = op.get();
  for (const Directory::Key& key : raw->keys()) by_key_[key].insert(raw->id());
  ops_[raw->id()] = Entry{std::move(op), waiter};
  return raw;
}

std::unique_ptr<Collective> Operations::Remove(OpId id) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return nullptr;
  std::unique_ptr<Collective> op = std::move(it->second.op);
  ops_.erase(it);
  for (const Directory::Key& key : op->keys()) {
    auto k = by_key_.find(key);
    if (k == by_key_.end()) continue;
    k->second.erase(id);
    if (k->second.empty()) by_key_.erase(k);
  }
  return op;
}

Collective* Operations::Find(OpId id) const {
  auto it = ops_.find(id);
  return it == ops_.end() ? nullptr : it->second.op.get();
}

Waiter* Operations::WaiterOf(OpId id) const {
  auto it = ops_.find(id);
  return it == ops_.end() ? nullptr : it->second.waiter;
}

std::vector<Collective*> Operations::ForReport(const proto::ReportTransferRequest& report) const {
  if (report.op_id() != 0) {
    Collective* op = Find(report.op_id());
    if (op == nullptr) return {};
    return {op};
  }
  return ForKey(Directory::Key(report.ref().ns(), report.ref().key()));
}

std::vector<Collective*> Operations::ForKey(const Directory::Key& key) const {
  std::vector<Collective*> out;
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return out;
  for (OpId id : it->second) out.push_back(Find(id));
  return out;
}

std::vector<Collective*> Operations::All() const {
  std::vector<Collective*> out;
  out.reserve(ops_.size());
  for (const auto& [id, e] : ops_) out.push_back(e.op.get());
  return out;
}

}  // namespace ferry::control
