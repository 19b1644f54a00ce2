// Compiles a static group's collective into one CollectiveProgram per rank (proto/group.proto):
// pure logic, no I/O, used by GroupCollective (group_collective.h) and tested by running the
// programs on byte arrays (tests/unit/control/group_programs_test.cc).
//
// Algorithms (N ranks in ring order, rank r pulls only from its predecessor r-1, so every
// link carries one stream and each node's receive link is the bottleneck):
// - ALLREDUCE: the object is cut into N segments of whole chunks. Reduce-scatter: rank r starts
//   a scratch copy W of its input with segment r complete, then for s = 0..N-2 pulls segment
//   (r-1-s) of W from r-1 into a reduce sink over its own W; after it, segment r+1 of W is fully
//   reduced. It copies that segment into the result R, then (allgather) for s = 0..N-2 pulls
//   segment (r-s) of R from r-1. Each rank receives 2(N-1)/N of the object; chunks are served
//   cut-through as they complete, so the steps pipeline around the ring and the time is
//   2(N-1)/N * S/B plus about 2(N-1) chunk times.
// - REDUCE_SCATTER: the reduce-scatter half with segments shifted by one, so rank r ends with
//   segment r (S / N bytes, S a multiple of N elements), copied into its result.
// - ALLGATHER: the result is N blocks of the input's size; rank r's block starts complete, then
//   for s = 0..N-2 it pulls block (r-1-s) from r-1.
// - BROADCAST: a chain in ring order from the root: each rank pulls the whole object from its
//   predecessor, cut-through.
// - REDUCE: a chain ending at the root: rank root+1 serves its input, every later rank pulls its
//   predecessor's partial sum into a reduce sink over a copy of its own input; the root's is the
//   result. S/B plus N-1 chunk times.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/ids.h"
#include "proto/group.pb.h"

namespace ferry::control {

struct GroupRank {
  NodeId node = 0;
  std::string address;   // data-plane address
};

struct GroupProgramSpec {
  proto::GroupCollectiveKind kind = proto::GROUP_COLLECTIVE_UNSPECIFIED;
  OpId op_id = 0;
  std::vector<GroupRank> ranks;               // rank order, >= 2
  std::vector<proto::ObjectRef> inputs;       // rank order (BROADCAST: only the root's is read)
  proto::ObjectMeta input;                    // every input's size, dtype, count
  proto::ObjectRef result;
  proto::ReduceOp op = proto::SUM;
  proto::DType dtype = proto::BYTES;
  uint32_t root = 0;
  int64_t deadline_unix_ms = 0;
  uint64_t result_incarnation = 0;            // non-zero, the same on every rank
  uint32_t max_chunk = 1 << 20;               // a multiple of 8
  uint32_t window = 4;
};

struct GroupPrograms {
  std::vector<proto::CollectiveProgram> programs;   // per rank
  std::vector<proto::ObjectMeta> result_meta;       // per rank (size 0: that rank gets none)
};

// The key of a collective's scratch object on every rank.
std::string GroupScratchKey(OpId op);

// INVALID_ARGUMENT for what the kind cannot do with these sizes (REDUCE_SCATTER of a size that
// is not N elements times a whole number, a reducing kind on BYTES, fewer than two ranks).
absl::StatusOr<GroupPrograms> CompileGroupPrograms(const GroupProgramSpec& spec);

// The chunk size for a block of `block` bytes of elements of `width` bytes: a multiple of
// `width` that divides `block` and is at most `max_chunk` where one exists, else 0.
uint32_t BlockChunk(uint64_t block, uint32_t width, uint32_t max_chunk);

}  // namespace ferry::control
