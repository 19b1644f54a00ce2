// An in-process Transport for unit tests of the engine: several InprocTransport instances in
// one process share an InprocFabric and exchange bytes with memcpy.
//
// Semantics follow transport.h:
// - Address blob: the node id as a decimal string. AddPeer rejects anything else, and an
//   address of another node, with INVALID_ARGUMENT.
// - Fetch: the request is delivered to the peer's FetchHandler on the peer's thread; a Reply
//   copies the source into the requester's destination on the requester's thread, then
//   `sent` runs on the peer's thread. Requests from nodes the peer has not AddPeer'd are
//   dropped at once and counted (TransportStats::dropped_requests); the UCX transport holds
//   them for a bounded time first (UcxTransportOptions::unknown_peer_wait_ms).
// - CancelFetch: a fetch whose reply has not been delivered completes with CANCELLED at once;
//   a reply delivered later copies nothing (the server's `sent` gets CANCELLED). A reply is
//   copied in one step on the requester's thread, so no receive is ever half done.
// - ResetPeer: outstanding operations to the peer complete with UNAVAILABLE; the peer stays.
// - Regions: host memory only; the remote key's transport part is the region id. Every slice
//   is checked against the registering node's table (memory_region.h).
// - Read: copies from a region the peer registered (remote_key from RegisterMemory).
// - Death: InprocFabric::Disconnect(node) / InprocTransport::Kill() remove the node from the
//   fabric: the killed node's own outstanding operations complete with CANCELLED (it behaves
//   as after Shutdown); every other node's outstanding operations to it complete with
//   UNAVAILABLE and their PeerFailureHandler runs once. Shutdown() is the same as Kill().
//
// Threading: each InprocTransport has one thread that runs all its handlers and completions
// in order. Public methods are thread-safe and never block, except RegisterMemory (a lock),
// Shutdown/Kill (join) and the destructor. Do not call Shutdown/Kill or destroy a transport
// from one of its own callbacks (it cannot join itself; it then stops without joining).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dataplane/transport/transport.h"

namespace ferry::dataplane {

namespace inproc_internal {
class Node;
}  // namespace inproc_internal

// The shared "network". Thread-safe. Outlives nothing in particular: transports keep it alive.
class InprocFabric {
 public:
  InprocFabric() = default;
  InprocFabric(const InprocFabric&) = delete;
  InprocFabric& operator=(const InprocFabric&) = delete;

  // Simulates the death of `node` (see the file comment). Blocks until the node's thread has
  // stopped. No-op for an unknown node.
  void Disconnect(NodeId node);
  // True while `node` is attached (created and neither killed nor shut down).
  bool IsAttached(NodeId node) const;

 private:
  friend class InprocTransport;
  friend class inproc_internal::Node;

  [[nodiscard]] absl::Status Attach(std::shared_ptr<inproc_internal::Node> node);
  std::shared_ptr<inproc_internal::Node> Find(NodeId node) const;

  mutable absl::Mutex mu_;
  // Live nodes. A node leaves exactly once (Disconnect), then its peers are told.
  absl::flat_hash_map<NodeId, std::shared_ptr<inproc_internal::Node>> nodes_
      ABSL_GUARDED_BY(mu_);
};

class InprocTransport final : public Transport {
 public:
  // ALREADY_EXISTS if `self` is already attached to `fabric`; INVALID_ARGUMENT for a null
  // fabric. Starts the transport's thread.
  static absl::StatusOr<std::unique_ptr<InprocTransport>> Create(
      std::shared_ptr<InprocFabric> fabric, NodeId self);
  ~InprocTransport() override;  // Shutdown()

  // Simulates this node's death: fabric->Disconnect(self()).
  void Kill();

  std::string_view Name() const override { return "inproc"; }
  NodeId self() const override { return self_; }
  std::string LocalAddress() const override;
  [[nodiscard]] absl::Status AddPeer(NodeId peer, std::string_view address) override;
  void RemovePeer(NodeId peer) override;
  void ResetPeer(NodeId peer) override;
  bool HasPeer(NodeId peer) const override;
  absl::StatusOr<MemoryRegion> RegisterMemory(MemoryKind kind, void* base, size_t length) override;
  void SetFetchHandler(FetchHandler handler) override;
  void SetControlHandler(ControlHandler handler) override;
  void SetPeerFailureHandler(PeerFailureHandler handler) override;
  FetchId Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) override;
  void CancelFetch(FetchId id) override;
  void Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) override;
  void SendControl(NodeId peer, std::string bytes, Done done) override;
  TransportStats Stats() const override;
  void Shutdown() override;

 private:
  InprocTransport(std::shared_ptr<InprocFabric> fabric, NodeId self,
                  std::shared_ptr<inproc_internal::Node> node)
      : fabric_(std::move(fabric)), self_(self), node_(std::move(node)) {}

  const std::shared_ptr<InprocFabric> fabric_;
  const NodeId self_;
  const std::shared_ptr<inproc_internal::Node> node_;
};

}  // namespace ferry::dataplane
