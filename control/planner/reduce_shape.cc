#include "control/planner/reduce_shape.h"

#include <algorithm>
#include <cmath>

namespace ferry::control {
namespace {

// Builds the post-order numbering: `heap` is a heap slot (binary node if < binary, else a
// chain slot); returns the position of the subtree's top (kNoPosition for an empty chain).
class ShapeBuilder {
 public:
  ShapeBuilder(uint32_t binary, std::vector<uint32_t> chain_lengths, ReduceShape* shape)
      : binary_(binary), chains_(std::move(chain_lengths)), shape_(shape) {}

  uint32_t Build(uint32_t heap) {
    if (heap < binary_) {
      const uint32_t left = Build(2 * heap + 1);
      const uint32_t right = Build(2 * heap + 2);
      const uint32_t self = Add();
      shape_->positions[self].binary = true;
      Link(left, self);
      Link(right, self);
      return self;
    }
    uint32_t below = kNoPosition;   // the chain, from its tail up to its head
    for (uint32_t i = 0; i < chains_[heap - binary_]; ++i) {
      const uint32_t self = Add();
      Link(below, self);
      below = self;
    }
    return below;
  }

 private:
  uint32_t Add() {
    shape_->positions.emplace_back();
    return static_cast<uint32_t>(shape_->positions.size()) - 1;
  }
  void Link(uint32_t child, uint32_t parent) {
    if (child == kNoPosition) return;
    shape_->positions[child].parent = parent;
    shape_->positions[parent].children.push_back(child);
  }

  const uint32_t binary_;
  const std::vector<uint32_t> chains_;   // length of the chain in heap slot binary_ + i
  ReduceShape* const shape_;
};

}  // namespace

uint32_t ReduceShape::height() const {
  uint32_t h = 0;
  for (const Position& p : positions) h = std::max(h, p.depth);
  return h;
}

uint32_t ReduceShape::max_fan_in() const {
  size_t f = 0;
  for (const Position& p : positions) f = std::max(f, p.children.size());
  return static_cast<uint32_t>(f);
}

uint32_t ReduceChainLength(uint64_t size, uint64_t inputs, const LinkModel& link) {
  if (inputs == 0) return 1;
  const double bl = std::max(link.bandwidth_Bps, 1.0) * std::max(link.latency_s, 1e-9);
  const double want = std::ceil(static_cast<double>(size) / bl);
  return static_cast<uint32_t>(std::clamp(want, 1.0, static_cast<double>(std::min<uint64_t>(inputs, 1u << 30))));
}

ReduceShape PlanReduceShape(uint32_t inputs, uint32_t chain_length) {
  ReduceShape shape;
  if (inputs == 0) return shape;
  const uint32_t c = std::clamp<uint32_t>(chain_length, 1, inputs);
  const uint32_t b = inputs <= c ? 0 : inputs / (c + 1);   // = ceil((k - c) / (c + 1))
  std::vector<uint32_t> chains(b + 1, (inputs - b) / (b + 1));
  for (uint32_t i = 0; i < (inputs - b) % (b + 1); ++i) ++chains[i];
  shape.chain_length = c;
  shape.binary_nodes = b;
  shape.positions.reserve(inputs);
  ShapeBuilder(b, std::move(chains), &shape).Build(0);
  for (uint32_t p = shape.root(); p-- > 0;) {   // parents come after children: fill depth top-down
    shape.positions[p].depth = shape.positions[shape.positions[p].parent].depth + 1;
  }
  return shape;
}

double PredictReduce(uint64_t size, uint64_t inputs, uint32_t chain_length, uint32_t chunk,
                     const LinkModel& link) {
  if (inputs <= 1) return 0;
  const ReduceShape shape = PlanReduceShape(static_cast<uint32_t>(std::min<uint64_t>(inputs, 1u << 20)), chain_length);
  const double f = std::max<uint32_t>(shape.max_fan_in(), 1);
  const double depth = shape.height();
  const double s = static_cast<double>(std::max<uint64_t>(size, 1));
  const double c = std::min<double>(std::max<uint32_t>(chunk, 1), s);
  const double b = std::max(link.bandwidth_Bps, 1.0);
  return s * f / b + (depth - 1) * c * f / b + depth * link.latency_s + std::ceil(s / c) * link.chunk_overhead_s * f;
}

ReducePlan PlanReduce(uint64_t size, uint64_t inputs, const LinkModel& link, const PlanLimits& limits) {
  ReducePlan plan;
  plan.chain_length = ReduceChainLength(size, inputs, link);
  std::vector<uint32_t> chunks;
  if (limits.fixed_chunk > 0) {
    chunks.push_back(limits.fixed_chunk);
  } else {
    for (uint64_t c = std::max<uint32_t>(limits.min_chunk, 1); c <= limits.max_chunk; c *= 2) {
      chunks.push_back(static_cast<uint32_t>(c));
    }
  }
  bool first = true;
  for (uint32_t c : chunks) {
    const double t = PredictReduce(size, inputs, plan.chain_length, c, link);
    if (first || t < plan.predicted_s - 1e-12) {
      plan.chunk_size = c;
      plan.predicted_s = t;
      first = false;
    }
  }
  if (first) plan.predicted_s = PredictReduce(size, inputs, plan.chain_length, plan.chunk_size, link);
  plan.window = WindowFor(plan.chunk_size, link);
  return plan;
}

}  // namespace ferry::control
