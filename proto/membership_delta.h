// Membership messages (proto::Membership): the coordinator builds one snapshot per new session
// and one delta per membership change; a node applies them to its view of its peers.
// Pure logic, no locking, no I/O; the format is described in docs/protocol.md "Membership".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/coordinator.pb.h"

namespace ferry::proto {

// A snapshot at `epoch`: `live` is every live node (the receiver included).
proto::CoordMessage MembershipSnapshot(uint64_t epoch, const std::vector<const proto::NodeInfo*>& live);
// A delta at `epoch`: `added` joined, `removed` (ids) are gone.
proto::CoordMessage MembershipDelta(uint64_t epoch, const std::vector<proto::NodeInfo>& added,
                                    const std::vector<uint64_t>& removed);

// Consecutive deltas (epochs e, e+1, ..., in order) as one delta covering them: its
// `first_epoch` is the first one's (or its first_epoch), its `epoch` the last one's; a node
// added and removed within the run is in neither list, one removed and added again (a
// re-registration) is in both (removals apply first).
proto::Membership MergeDeltas(const std::vector<const proto::Membership*>& run);

// Whether `m` is a snapshot: `full`, or (a coordinator from before deltas) a non-empty `nodes`.
bool IsSnapshot(const proto::Membership& m);

// Applies one Membership of the current session to a node's view: `*epoch` is the last epoch
// applied (0: none yet, as at the start of a session) and `*peers` maps every live node but
// `self` to its data-plane address.
// - A snapshot replaces the view; one not newer than `*epoch` is ignored (a coordinator from
//   before deltas could reorder its full lists).
// - A delta must start at `*epoch` + 1 (its first_epoch, or its epoch if first_epoch is 0)
//   after a snapshot. Otherwise (a gap, or no snapshot yet)
//   it is FAILED_PRECONDITION naming both epochs, and nothing changes: the caller ends its
//   session, and the next one starts with a snapshot.
[[nodiscard]] absl::Status ApplyMembership(const proto::Membership& m, uint64_t self, uint64_t* epoch,
                                           std::map<uint64_t, std::string>* peers);

}  // namespace ferry::proto
