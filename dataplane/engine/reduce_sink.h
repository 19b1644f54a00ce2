// Reduce's sink (chunk_sink.h): a child's chunks land in staging slots and are combined into the
// local object's bytes as they land.
//
// The sink owns `window` staging slots of `chunk_size` bytes in a registered scratch range.
// Destination(k) hands chunk k a free slot; Landed(k) computes
//   object[first, first+len) = op(object[first, first+len), slot)   (core/reduce.h, host memory)
// then marks chunk k in the store (ObjectStore::MarkChunk: the combined chunk can now be served
// upward, cut-through) and frees the slot; Abandoned(k) frees the slot. Each chunk is combined at
// most once per sink: a second Landed(k) without a new Destination(k) is refused.
//
// One sink combines ONE child's stream into the object, and marks chunks as it goes. A position
// with two children must not mark a chunk until both have been combined into it, and must not
// run two combines into the same chunk at once: that coordination is the caller's (e.g. pull the
// second child into a second receiving object, or a shared per-chunk counter; see the report of
// issue 15).
//
// Memory: host regions only (a CUDA device object needs the kernel path: UNIMPLEMENTED). The
// object's and the scratch's regions are the ones registered with the transport the puller uses:
// the slice Destination returns names the scratch region, and the sink reads and writes through
// the regions' base addresses.
//
// Threading (chunk_sink.h): Destination, Landed and Abandoned may run on different threads, and
// Landed for different chunks may overlap (combines run outside the lock). The free-slot list and
// the chunk -> slot map are guarded by one mutex. None blocks beyond that short lock and the
// combine itself. `store` and the regions' memory must outlive the sink.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dataplane/engine/chunk_sink.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/memory_region.h"
#include "ferry/object.h"

namespace ferry::dataplane {

struct ReduceSinkSpec {
  std::string ns;
  std::string key;
  ReduceOp op = ReduceOp::kSum;
  DType dtype = DType::kF32;
  // The local object the chunks are combined into: `object_region` holds it at
  // [object_offset, object_offset + object_size).
  MemoryRegion object_region;
  uint64_t object_offset = 0;
  uint64_t object_size = 0;
  // The staging slots: `window` slots of `chunk_size` bytes from scratch_offset on.
  MemoryRegion scratch_region;
  uint64_t scratch_offset = 0;
  uint32_t chunk_size = 1 << 20;
  uint32_t window = 4;
};

class ReduceSink final : public ChunkSink {
 public:
  // Checks the spec: INVALID_ARGUMENT for a null store, an op/dtype pair without arithmetic
  // (kBytes, values outside the enums), a zero window or chunk size, a chunk size or object
  // size that is not a multiple of the dtype's size, a region without an id or base, scratch
  // that overlaps the object; OUT_OF_RANGE for an object or slots that do not fit their region;
  // UNIMPLEMENTED for a region that is not host memory.
  static absl::StatusOr<std::unique_ptr<ReduceSink>> Create(ObjectStore* store, ReduceSinkSpec spec);

  // A free slot of the scratch region for chunk k, `len` bytes from its start. OUT_OF_RANGE if
  // the chunk does not lie within the object; INVALID_ARGUMENT if len exceeds chunk_size or
  // first/len split an element; FAILED_PRECONDITION if chunk k already holds a slot;
  // RESOURCE_EXHAUSTED if every slot is in use.
  absl::StatusOr<LocalSlice> Destination(uint32_t k, uint64_t first, uint64_t len) override;
  // Combines chunk k's slot into the object, marks the chunk in the store and frees the slot.
  // FAILED_PRECONDITION if chunk k holds no slot (no Destination, or already landed); a combine
  // error (core/reduce.h) is returned with the chunk named, and the chunk is not marked (its
  // slot is freed either way).
  absl::Status Landed(uint32_t k) override;
  // Frees chunk k's slot (no-op if it holds none).
  void Abandoned(uint32_t k) override;

  // Slots not handed out now (for tests and metrics).
  uint32_t free_slots() const;

 private:
  struct InFlight {
    uint32_t slot = 0;
    uint64_t first = 0;   // byte offset of the chunk within the object
    uint64_t len = 0;
    bool landing = false;   // Landed is combining it
  };
  ReduceSink(ObjectStore* store, ReduceSinkSpec spec);
  void FreeSlot(uint32_t k);

  ObjectStore* const store_;
  const ReduceSinkSpec spec_;
  uint8_t* const object_base_;    // the object's byte 0 in this address space
  uint8_t* const scratch_base_;   // slot 0's byte 0

  mutable absl::Mutex mu_;
  // Invariant: every slot index in [0, window) is in exactly one of free_ and in_flight_.
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);   // chunk -> its slot
};

}  // namespace ferry::dataplane
