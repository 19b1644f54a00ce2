// The shape of a reduce tree and its cost (DESIGN.md "Planning collectives": Reduce). Pure
// functions; the stateful planner that fills the shape with nodes is reduce_planner.h.
//
// Shape: a tree of binary nodes with pipelined chains under its leaves. A chain of m positions
// costs about S/B + m*(c/B + L) (each hop adds one chunk time and one latency, the stream is
// pipelined); a binary node receives two streams over one link, so the tree above the chains
// costs about 2*S/B but halves the depth per level. Chains therefore grow to about S / (B * L)
// positions, where B and L are the *measured* link bandwidth and per-hop latency (LinkModel),
// before it pays to merge two of them: large objects get one long chain, small ones a binary
// tree.
//
// Layout for k positions and chain length c (1 <= c <= k):
//   k <= c: one chain of k positions (its head is the root).
//   else:   b = ceil((k - c) / (c + 1)) binary nodes in heap order (node i's children are heap
//           slots 2i+1 and 2i+2; slots >= b are chain slots), and b + 1 chains sharing the other
//           k - b positions as evenly as possible (each <= c; a chain may be empty when k is
//           small, leaving its binary node with one child).
// Positions are numbered in post-order (children before their parent; within a chain from its
// tail up to its head; the root last). That is the fill order: inputs take positions in the
// order they become ready, so each filled prefix is a set of subtrees that can reduce without
// waiting for a later input.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "control/planner/cost_model.h"

namespace ferry::control {

inline constexpr uint32_t kNoPosition = std::numeric_limits<uint32_t>::max();

struct ReduceShape {
  struct Position {
    uint32_t parent = kNoPosition;    // kNoPosition for the root
    std::vector<uint32_t> children;   // 0 (a chain tail), 1 (chain) or 2 (binary node)
    uint32_t depth = 0;               // edges to the root
    bool binary = false;              // a binary node (else a chain position)
  };
  std::vector<Position> positions;    // index = position = fill order; the root is the last
  uint32_t chain_length = 1;
  uint32_t binary_nodes = 0;

  uint32_t root() const { return static_cast<uint32_t>(positions.size()) - 1; }
  // Edges on the longest leaf-to-root path (0 for a single position).
  uint32_t height() const;
  // The most children any position has (the fan-in that shares one node's link).
  uint32_t max_fan_in() const;
};

// clamp(ceil(size / (B * L)), 1, inputs): positions per chain (1 if inputs == 0).
uint32_t ReduceChainLength(uint64_t size, uint64_t inputs, const LinkModel& link);
// The shape above for `inputs` positions (empty for 0); chain_length is clamped to [1, inputs].
ReduceShape PlanReduceShape(uint32_t inputs, uint32_t chain_length);

// Predicted completion time of a pipelined reduce of `inputs` objects of `size` bytes with
// this chain length and chunk, from the moment the last input is ready: with f the largest
// fan-in and D the tree's height,  S*f/B + (D-1)*c*f/B + D*L + ceil(S/c)*o*f  (0 for one input).
double PredictReduce(uint64_t size, uint64_t inputs, uint32_t chain_length, uint32_t chunk,
                     const LinkModel& link);

struct ReducePlan {
  uint32_t chain_length = 1;
  uint32_t chunk_size = 1 << 20;
  uint32_t window = 4;
  double predicted_s = 0;
};
// Chain length from ReduceChainLength; the chunk (a power of two in [min_chunk, max_chunk], or
// limits.fixed_chunk) with the smallest PredictReduce; the window from WindowFor.
ReducePlan PlanReduce(uint64_t size, uint64_t inputs, const LinkModel& link, const PlanLimits& limits = {});

}  // namespace ferry::control
