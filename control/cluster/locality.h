// Where nodes are relative to each other, from the labels they registered with (the labels the
// placement service matches on: docs/architecture.md "Placement"). Two labels describe the
// topology: "host" (nodes on one machine share it) and "rack" (nodes behind one top-of-rack
// switch share it). A node without a host label is its own host; without a rack label it shares
// a rack with no one.
//
// The broadcast planner uses it to keep a tree's links short: a receiver pulls from a copy on
// its own host, else in its own rack, else anywhere (BroadcastPlanner::Attach), and an explicit
// broadcast attaches its targets rack by rack, starting with the source's (OrderByLocality), so
// that each rack is entered over the spine once instead of once per receiver.
//
// Pure logic over registrations (proto::NodeInfo); read under the coordinator's lock.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "core/ids.h"
#include "proto/common.pb.h"

namespace ferry::control {

inline constexpr std::string_view kHostLabel = "host";
inline constexpr std::string_view kRackLabel = "rack";

// The node's host: its "host" label, else its own name.
std::string_view HostOf(const proto::NodeInfo& node);

// Whether the node has a non-empty "host" or "rack" label (without either, every other node is
// at kRemote from it).
bool HasTopologyLabels(const proto::NodeInfo& node);

// 0: the same host; 1: the same rack; 2: farther (or either node unknown: null).
enum Distance : uint32_t { kSameHost = 0, kSameRack = 1, kRemote = 2 };
uint32_t LocalityDistance(const proto::NodeInfo* a, const proto::NodeInfo* b);

// Orders `targets` so that they are attached with the fewest long links: the source's host,
// then the source's rack, then the other racks one after another (racks in order of their
// first target as given, each rack's hosts adjacent), nodes with no rack last. Within each
// group the given order is kept. `info` gives a node's registration (null: unknown, placed
// last). Stable and deterministic.
std::vector<NodeId> OrderByLocality(const std::vector<NodeId>& targets, NodeId source,
                                    const std::function<const proto::NodeInfo*(NodeId)>& info);

}  // namespace ferry::control
