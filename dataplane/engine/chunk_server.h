// Serves chunk fetch requests from peers out of the local object store. A request for a
// chunk that has not landed yet (a partial copy) is answered as soon as it lands: this is
// cut-through forwarding, so a chain of nodes pipelines chunk by chunk.
//
// A request for an object this node does not have yet is held (ObjectStore::ServeChunk) for
// up to ChunkServerOptions::absent_wait and served once the object is created: the
// coordinator points a receiver at this node a moment before this node has created its
// receiving copy. A request for an object deleted here (now, or while held) fails with
// NOT_FOUND "object <name> was deleted on node <self>" (IsObjectDeleted on the receiver,
// docs/protocol.md "Chunk fetch").
//
// A pack request names several whole objects; it is answered once each of them is complete
// here (each waited for like a chunk), with their bytes gathered into one pack buffer.
//
// Threading: the handler runs on the transport's progress thread and never blocks; replies
// may be sent from whichever thread lands, creates or deletes the object. One timer thread
// of this server fails held requests whose wait is over; the destructor joins it.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"

namespace ferry::dataplane {

class PackBuffers;

struct ChunkServerOptions {
  // How long a request for an object that does not exist here is held for it to be created
  // before it fails with NOT_FOUND. 0: fail at once.
  absl::Duration absent_wait = absl::Seconds(2);
  // Pack requests (chunk_request.h) are gathered into these buffers; null: pack requests fail
  // with UNIMPLEMENTED. `arena_base` is where the store's offsets point. Both must outlive the
  // server.
  PackBuffers* packs = nullptr;
  const uint8_t* arena_base = nullptr;
};

class ChunkServer {
 public:
  // `arena` is the transport's registration of the arena (RegisterMemory): store offsets
  // are offsets into it, and replies are slices of it. `store` must outlive the server.
  ChunkServer(ObjectStore* store, RegionId arena, ChunkServerOptions options = {});
  // Joins the timer thread and fails every request still held for an absent object
  // (NOT_FOUND). Shut the transport down first.
  ~ChunkServer();
  ChunkServer(const ChunkServer&) = delete;
  ChunkServer& operator=(const ChunkServer&) = delete;

  // Serves pack requests from `packs` (see ChunkServerOptions). Call before Attach.
  void EnablePacks(PackBuffers* packs, const uint8_t* arena_base) {
    options_.packs = packs;
    options_.arena_base = arena_base;
  }
  // Installs the fetch handler on `transport`.
  void Attach(Transport* transport);

  uint64_t chunks_served() const { return chunks_served_.load(); }
  uint64_t bytes_served() const { return bytes_served_.load(); }
  uint64_t requests_rejected() const { return rejected_.load(); }
  // Requests that were held for an object not created yet (served or failed since).
  uint64_t requests_held() const { return held_.load(); }
  uint64_t packs_served() const { return packs_served_.load(); }

 private:
  struct Pack;
  void Handle(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder);
  void HandlePack(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder);
  // Every object of the pack is here (or one failed): gather and reply, or fail.
  void FinishPack(const std::shared_ptr<Pack>& pack);
  // The error a requester sees for a failed serve of ns/key.
  absl::Status ServeError(const std::string& ns, const std::string& key, const absl::Status& why) const;
  // Makes the timer thread look again by `until` at the latest.
  void WakeTimerBy(absl::Time until);
  void TimerLoop();

  ObjectStore* store_;
  const RegionId arena_;
  ChunkServerOptions options_;   // set before Attach, read-only afterwards
  std::atomic<NodeId> self_{0};
  std::atomic<uint64_t> chunks_served_{0};
  std::atomic<uint64_t> bytes_served_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> held_{0};
  std::atomic<uint64_t> packs_served_{0};

  absl::Mutex mu_;   // the timer's schedule and the stop flag
  // When the timer thread next expires held requests (InfiniteFuture: none held); a wake
  // with an earlier time moves it.
  absl::Time timer_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;   // last: starts after the fields above exist
};

}  // namespace ferry::dataplane
