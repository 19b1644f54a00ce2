// Reduce's sink (chunk_sink.h): a child's chunks land in staging slots and are combined into the
// local object's bytes as they land.
//
// A sink owns `window` staging slots of `chunk_size` bytes in a registered scratch range.
// Destination(k) hands chunk k a free slot; Landed(k) computes
//   object[first, first+len) = op(object[first, first+len), slot)   (core/reduce.h, host memory)
// and frees the slot; Abandoned(k) frees the slot. Once every child has combined chunk k, the
// chunk is marked in the store (ObjectStore::MarkChunk: the combined chunk can now be served
// upward, cut-through).
//
// Children: a chain position has one child (Create: one sink); a binary node has two, pulled at
// the same time (CreateGroup: one sink per child pull, sharing the object). In a group a chunk is
// marked only when every sink has combined it, and combines into the same chunk are serialised:
// a Landed(k) may wait for another child's combine of chunk k (at most one chunk's combine, some
// 0.2 ms for 1 MiB). Each pull reads the store's missing chunks when it starts (Puller), and no
// chunk is marked before every child has combined it, so every child's pull fetches every chunk.
//
// Each sink combines each chunk at most once: Destination(k) of a chunk it has combined, and a
// second Landed(k), are refused (FAILED_PRECONDITION). A child pull that fails and is retried
// into the same group therefore fails on the chunks it had combined: the position must restart
// its partial sum (the planner's recompute), never combine a child twice.
//
// Memory: host regions only (a CUDA device object needs the kernel path: UNIMPLEMENTED). The
// object's and the scratch's regions are the ones registered with the transport the puller uses:
// the slice Destination returns names the scratch region, and the sink reads and writes through
// the regions' base addresses.
//
// Threading (chunk_sink.h): Destination, Landed and Abandoned may run on different threads, and
// Landed for different chunks (or, in a group, for the same chunk from different sinks) may
// overlap; combines of different chunks run in parallel, outside every lock. Each sink's
// free-slot list is guarded by its mutex; the group's per-chunk state by the group's. `store` and
// the regions' memory must outlive the sinks.
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
  // The staging slots: `window` slots of `chunk_size` bytes per sink from scratch_offset on
  // (sink i of a group uses slots [i * window, (i + 1) * window)).
  MemoryRegion scratch_region;
  uint64_t scratch_offset = 0;
  uint32_t chunk_size = 1 << 20;
  uint32_t window = 4;
};

class ReduceSink final : public ChunkSink {
 public:
  static constexpr uint32_t kMaxChildren = 64;

  // One sink for a position with one child. Checks the spec: INVALID_ARGUMENT for a null
  // store, an op/dtype pair without arithmetic (kBytes, values outside the enums), a zero
  // window or chunk size, a chunk size or object size that is not a multiple of the dtype's
  // size, a region without an id or base, scratch that overlaps the object; OUT_OF_RANGE for an
  // object or slots that do not fit their region; UNIMPLEMENTED for a region that is not host
  // memory.
  static absl::StatusOr<std::unique_ptr<ReduceSink>> Create(ObjectStore* store, ReduceSinkSpec spec);
  // `children` sinks (1..kMaxChildren, else INVALID_ARGUMENT) combining into the same object,
  // one per child pull; the scratch range holds children * window slots. The same checks.
  static absl::StatusOr<std::vector<std::unique_ptr<ReduceSink>>> CreateGroup(ObjectStore* store,
                                                                              ReduceSinkSpec spec,
                                                                              uint32_t children);

  // A free slot of the scratch region for chunk k = bytes [first, first+len) of the object.
  // OUT_OF_RANGE if the chunk does not lie within the object; INVALID_ARGUMENT if first is not
  // k * chunk_size, len exceeds chunk_size or splits an element; FAILED_PRECONDITION if chunk k
  // holds a slot already or this sink has combined it; RESOURCE_EXHAUSTED if every slot is in
  // use.
  absl::StatusOr<LocalSlice> Destination(uint32_t k, uint64_t first, uint64_t len) override;
  // Combines chunk k's slot into the object, frees the slot, and marks the chunk in the store
  // when every sink of the group has combined it. FAILED_PRECONDITION if chunk k holds no slot
  // (no Destination, or already landed); a combine error (core/reduce.h) is returned with the
  // chunk named, and the chunk does not count as combined (its slot is freed either way).
  absl::Status Landed(uint32_t k) override;
  // Frees chunk k's slot (no-op if it holds none).
  void Abandoned(uint32_t k) override;

  // Slots not handed out now (for tests and metrics).
  uint32_t free_slots() const;

 private:
  struct Group;   // the object and its per-chunk state, shared by the sinks of a group
  struct InFlight {
    uint32_t slot = 0;
    uint64_t first = 0;     // byte offset of the chunk within the object
    uint64_t len = 0;
    bool landing = false;   // Landed is combining it
  };
  ReduceSink(std::shared_ptr<Group> group, uint32_t index);
  void FreeSlot(uint32_t k, bool combined);

  const std::shared_ptr<Group> group_;
  uint8_t* const slots_base_;   // this sink's slot 0
  const uint64_t slots_offset_;  // its offset in the scratch region

  mutable absl::Mutex mu_;
  // Invariant: every slot index in [0, window) is in exactly one of free_ and in_flight_.
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);   // chunk -> its slot
  std::vector<bool> combined_ ABSL_GUARDED_BY(mu_);   // per chunk: this sink has combined it
};

}  // namespace ferry::dataplane
