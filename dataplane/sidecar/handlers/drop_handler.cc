#include "dataplane/sidecar/handlers/drop_handler.h"

#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

namespace {

void DropOne(ObjectStore* store, const proto::ObjectRef& ref, uint64_t incarnation) {
  const std::string& ns = ref.ns();
  const std::string& key = ref.key();
  if (ValidateObjectName(ns, key).ok() && store->Drop(ns, key, incarnation)) {
    spdlog::debug("dropped {} (incarnation {}): deleted cluster-wide", PrintableName(ns, key), incarnation);
  }
}

std::optional<proto::DropDone> Done(uint64_t op_id) {
  if (op_id == 0) return std::nullopt;
  proto::DropDone done;
  done.set_op_id(op_id);
  return done;
}

}  // namespace

std::optional<proto::DropDone> DropHandler::Handle(const proto::DropInstruction& drop) {
  DropOne(store_, drop.ref(), drop.incarnation());
  return Done(drop.op_id());
}

std::optional<proto::DropDone> DropHandler::Handle(const proto::BatchDropInstruction& drops) {
  for (const proto::DropEntry& e : drops.entries()) DropOne(store_, e.ref(), e.incarnation());
  return Done(drops.op_id());
}

}  // namespace ferry::dataplane
