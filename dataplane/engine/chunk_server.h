// Serves chunk fetch requests from peers out of the local object store. A request for a
// chunk that has not landed yet (a partial copy) is answered as soon as it lands: this is
// cut-through forwarding, so a chain of nodes pipelines chunk by chunk.
//
// Threading: the handler runs on the transport's progress thread and never blocks; replies
// may be sent from whichever thread lands the chunk.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"

namespace ferry::dataplane {

class ChunkServer {
 public:
  // `arena_base` is where store offsets point. Both must outlive the server.
  ChunkServer(ObjectStore* store, uint8_t* arena_base) : store_(store), arena_base_(arena_base) {}

  // Installs the fetch handler on `transport`.
  void Attach(Transport* transport);

  uint64_t chunks_served() const { return chunks_served_.load(); }
  uint64_t bytes_served() const { return bytes_served_.load(); }
  uint64_t requests_rejected() const { return rejected_.load(); }

 private:
  void Handle(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder);

  ObjectStore* store_;
  uint8_t* arena_base_;
  std::atomic<uint64_t> chunks_served_{0};
  std::atomic<uint64_t> bytes_served_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace ferry::dataplane
