// Where the chunks of a pull land, and what landing one means (Puller, puller.h).
//
// The puller fetches chunk k into the slice the sink gives it (Destination) and tells the
// sink when the bytes are there (Landed) or when the fetch ended without them (Abandoned).
// The sink decides what landing means:
// - CopySink (broadcast, this file): the chunk lands at the object's own offset in the
//   arena and is marked in the store (ObjectStore::MarkChunk), which also wakes peers
//   waiting to be served that chunk (cut-through).
// - ReduceSink (reduce, dataplane/engine/reduce_sink.h; nothing in the puller changed for it):
//   it owns `window` staging slots in a registered scratch region.
//   Destination(k) hands out a free slot (the puller never has more than PullSpec::window
//   fetches in flight, so one is always free; a sink may still fail with
//   RESOURCE_EXHAUSTED, which ends the pull). Landed(k) combines the slot with the local
//   chunk at the object's offset (op and dtype; vector loops for host memory, a kernel for
//   device memory), then marks the chunk in the store and frees the slot; a failure (say a
//   length that is not a multiple of the dtype) is returned and ends the pull.
//   Abandoned(k) frees the slot. Each chunk is combined exactly once: the puller calls
//   Landed only for an OK fetch, and fetches a chunk again only after Abandoned.
//
// Threading: Destination runs on the thread issuing the fetch (Pull's caller or the
// transport's thread), Landed and Abandoned on the transport's thread (or whichever thread
// completes the fetch), never two for the same chunk at once; different chunks may overlap.
// None may block. The sink must outlive the Pull call it is given to (Pull returns only
// after every fetch has completed, so no call comes after it returns).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/memory_region.h"

namespace ferry::dataplane {

class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // The local slice chunk `k` (bytes [first, first+len) of the object) is fetched into. An
  // error ends the pull with it; nothing is fetched for the chunk.
  virtual absl::StatusOr<LocalSlice> Destination(uint32_t k, uint64_t first, uint64_t len) = 0;
  // Chunk k's bytes have landed in its Destination. An error ends the pull with it.
  [[nodiscard]] virtual absl::Status Landed(uint32_t k) = 0;
  // Chunk k's fetch ended without its bytes (failed or cancelled); no byte can land in its
  // Destination any more.
  virtual void Abandoned(uint32_t k) {}
};

// Broadcast's sink: chunks land in place and are marked in the store.
class CopySink final : public ChunkSink {
 public:
  // `object` is the whole object's range in a registered region (offset: where its byte 0
  // lies; length: its size). `store` must outlive the sink.
  CopySink(ObjectStore* store, std::string ns, std::string key, LocalSlice object)
      : store_(store), ns_(std::move(ns)), key_(std::move(key)), object_(object) {}

  // {object.region, object.offset + first, len}; OUT_OF_RANGE if the chunk does not lie
  // within the object (or the object's range wraps).
  absl::StatusOr<LocalSlice> Destination(uint32_t k, uint64_t first, uint64_t len) override;
  // ObjectStore::MarkChunk; always OK.
  absl::Status Landed(uint32_t k) override;

 private:
  ObjectStore* const store_;
  const std::string ns_;
  const std::string key_;
  const LocalSlice object_;
};

}  // namespace ferry::dataplane
