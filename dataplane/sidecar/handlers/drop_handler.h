// A DropInstruction or BatchDropInstruction (docs/protocol.md): the copy of that incarnation goes, the incarnation is
// remembered as deleted (so a Get still in flight cannot store it), and with op_id != 0 the
// coordinator gets DropDone{op_id} back on the session.
//
// Threading: thread-safe (the store is).
#pragma once

#include <optional>

#include "dataplane/store/object_store.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

class DropHandler {
 public:
  explicit DropHandler(ObjectStore* store) : store_(store) {}
  // The DropDone to send back, if the instruction asked for one (op_id != 0). An invalid
  // name drops nothing but is still answered: there is nothing of it here.
  std::optional<proto::DropDone> Handle(const proto::DropInstruction& drop);
  // Each entry as a DropInstruction with op_id 0, in order; then one DropDone if op_id != 0.
  std::optional<proto::DropDone> Handle(const proto::BatchDropInstruction& drops);

 private:
  ObjectStore* const store_;
};

}  // namespace ferry::dataplane
