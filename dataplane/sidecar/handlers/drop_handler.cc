#include "dataplane/sidecar/handlers/drop_handler.h"

#include "core/names.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

std::optional<proto::DropDone> DropHandler::Handle(const proto::DropInstruction& drop) {
  const std::string& ns = drop.ref().ns();
  const std::string& key = drop.ref().key();
  if (ValidateObjectName(ns, key).ok() && store_->Drop(ns, key, drop.incarnation())) {
    spdlog::debug("dropped {} (incarnation {}): deleted cluster-wide", PrintableName(ns, key), drop.incarnation());
  }
  if (drop.op_id() == 0) return std::nullopt;
  proto::DropDone done;
  done.set_op_id(drop.op_id());
  return done;
}

}  // namespace ferry::dataplane
