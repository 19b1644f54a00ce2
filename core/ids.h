// Identifiers every binary shares. Defined once here; the proto messages carry the same
// values as uint64 fields.
#pragma once

#include <cstdint>

namespace ferry {

// A ferryd's id in the cluster: assigned by the node itself at first start (random, nonzero)
// and kept across coordinator restarts. 0 means "no node".
using NodeId = uint64_t;
// An operation (a broadcast, a delete, a reduce...) as the coordinator numbers it: every
// instruction and every transfer report it causes carries it. 0 means "none".
using OpId = uint64_t;
// One life of an object name: chosen at Create, so a deleted and re-created object is a
// different incarnation and stale copies of the old one are recognised.
using Incarnation = uint64_t;

}  // namespace ferry
