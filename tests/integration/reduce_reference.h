// Test inputs for reduce whose results are exact in every dtype, and the scalar reference
// that combines them element by element (for integer dtypes the C wrap-around of
// core/reduce.h). Exact inputs make the check bitwise: small integers for sum, min and max
// (|sum| <= 64 for up to 8 inputs, exact even in f16 and bf16), +-{0.5, 1, 2} for prod (powers
// of two), and full-range values for the integer dtypes (so that sums and products wrap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ferry/object.h"

namespace ferry::testing {

// `elems` elements of `dtype` for `op`, encoded as the dtype's bytes; deterministic in `seed`.
std::vector<uint8_t> ReduceInput(ReduceOp op, DType dtype, size_t elems, uint64_t seed);
// op over `inputs` (each of the same size), element by element, encoded as the dtype's bytes.
std::vector<uint8_t> ReduceReference(ReduceOp op, DType dtype, const std::vector<std::vector<uint8_t>>& inputs);
// "" if equal, else the first differing element (index, expected, got) as text.
std::string FirstDifference(DType dtype, const std::vector<uint8_t>& want, const uint8_t* got, size_t size);

}  // namespace ferry::testing
