// The data-plane transport seam. Implementations: ucx (dataplane/ucx), inproc (tests) and a
// fault-injecting wrapper (dataplane/transport/faulty_transport.h).
//
// Model
// - Every node has one Transport. Peers are named by their ferry node id and must be added
//   (AddPeer) with the address blob the coordinator relayed before any operation targets
//   them; connections are made lazily on first use. A node serves fetches and control
//   messages only from peers it has added; a transport may hold early ones for a bounded
//   time (membership reaches nodes in any order) and drops the rest (dropped_requests).
// - Memory: bytes move between registered regions (memory_region.h), never raw pointers.
//   RegisterMemory (once, at start-up) returns a region handle and a remote key blob; every
//   operation names a LocalSlice (region handle, offset, length) for local memory and a
//   RemoteSlice (the peer's key blob, offset, length) for a peer's. A transport checks each
//   slice against its region's bounds and fails the operation (its Done) with
//   INVALID_ARGUMENT (unknown region) or OUT_OF_RANGE (outside it) instead of touching
//   memory. Only host memory is supported; other kinds are refused with UNIMPLEMENTED.
// - Two ways to move bytes from a peer into local memory:
//     * Fetch: a receiver-driven, two-sided pull. The receiver sends a small request
//       (opaque header bytes); the peer's FetchHandler resolves it, possibly later (for
//       instance once a chunk has landed there), by replying with a slice of one of its
//       registered regions; the bytes land directly in the receiver's destination slice
//       (UCX: active message with rendezvous, received with ucp_am_recv_data_nbx into the
//       destination). The request's wire format does not carry regions.
//     * Read: a one-sided read of a peer's registered region (UCX: ucp_get_nbx; verbs: an
//       RDMA READ with the destination's lkey and the remote key's rkey).
//   Which one ferry uses is a measured choice (docs/benchmarks.md).
// - Control messages: small, unordered-with-respect-to-data byte strings.
// - Cancellation: Fetch returns an id; CancelFetch(id) ends that fetch early with CANCELLED
//   once no byte can land in its destination any more (a reply that arrives later is
//   dropped). Callers that give up on a fetch cancel it and wait for its Done: only then may
//   they reuse the destination. ResetPeer force-closes a connection as the last resort.
// - Failure: when a peer dies or its connection breaks, every outstanding operation to it
//   completes with UNAVAILABLE naming the peer, and the PeerFailureHandler runs once. The
//   peer may be used again later (a new connection is made).
//
// Threading
// - All handlers and completion callbacks run on the transport's own progress thread. They
//   must not block; they may post new operations (which are queued).
// - Every public method is thread-safe and non-blocking unless its comment says otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/ids.h"
#include "dataplane/transport/memory_region.h"

namespace ferry::dataplane {

// Names one outstanding Fetch of one transport (for CancelFetch). 0 names none.
using FetchId = uint64_t;

// Completion of an operation. Runs on the progress thread, exactly once.
using Done = absl::AnyInvocable<void(absl::Status)>;

// Given to a FetchHandler: answers one fetch request. Exactly one of Reply / Fail must be
// called, exactly once, from any thread. Destroying a responder that was never answered
// fails the request with INTERNAL.
class FetchResponder {
 public:
  virtual ~FetchResponder() = default;
  // Sends `src` (a slice of a region registered with this transport) to the requester. The
  // bytes must stay valid and unchanged until `sent` runs (with the outcome of the send).
  // `src.length` must equal the length the requester asked for; otherwise the requester
  // sees INTERNAL. A slice outside its region fails both sides: the requester with
  // INTERNAL, `sent` with the range error (INVALID_ARGUMENT / OUT_OF_RANGE).
  virtual void Reply(LocalSlice src, Done sent) = 0;
  // Fails the request; the requester's Done receives `status` (code and message kept).
  virtual void Fail(absl::Status status) = 0;
};

// Resolves a fetch request from `from`. `header` is only valid during the call.
using FetchHandler =
    std::function<void(NodeId from, std::string_view header, std::unique_ptr<FetchResponder>)>;
// Receives a control message. `bytes` is only valid during the call.
using ControlHandler = std::function<void(NodeId from, std::string_view bytes)>;
// A peer failed (connection error, peer died). Runs once per failure.
using PeerFailureHandler = std::function<void(NodeId peer, const absl::Status& why)>;

// Counters, readable from any thread.
struct TransportStats {
  uint64_t bytes_fetched = 0;     // bytes received through Fetch / Read
  uint64_t bytes_served = 0;      // bytes sent as Fetch replies
  uint64_t fetches = 0;           // Fetches completed OK
  uint64_t reads = 0;             // Reads completed OK
  uint64_t failures = 0;          // operations completed with an error
  uint64_t peer_failures = 0;
  uint64_t dropped_requests = 0;  // fetch requests / control messages from unknown nodes
  uint64_t invalid_peer_addresses = 0;  // AddPeer calls refused: the address blob is invalid
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Name of the implementation ("ucx", "inproc", ...).
  virtual std::string_view Name() const = 0;
  // This node's id.
  virtual NodeId self() const = 0;
  // Address blob peers pass to AddPeer.
  virtual std::string LocalAddress() const = 0;

  // Records `peer`'s address (replacing an older one, which drops the old connection).
  // INVALID_ARGUMENT if the blob is not a valid address for this transport.
  [[nodiscard]] virtual absl::Status AddPeer(NodeId peer, std::string_view address) = 0;
  // Forgets a peer; its outstanding operations fail with UNAVAILABLE. For a peer that is
  // gone (membership says so), not for one slow operation: that is what CancelFetch is for.
  virtual void RemovePeer(NodeId peer) = 0;
  // Force-closes the connection to `peer` but keeps the peer: every outstanding operation to
  // it completes with UNAVAILABLE once the transport has torn down what could still write
  // the caller's memory; the next operation reconnects. The last resort of a caller whose
  // cancelled fetches did not complete in time (it fails other callers' operations too).
  virtual void ResetPeer(NodeId peer) = 0;
  // True if AddPeer was called for `peer` and it has not been removed.
  virtual bool HasPeer(NodeId peer) const = 0;

  // Registers [base, base+length) of memory of `kind` for local operations and remote reads;
  // returns its handle and remote key blob (memory_region.h). INVALID_ARGUMENT for an empty
  // range, UNIMPLEMENTED naming the kind for anything but host memory, or the library's
  // error. Blocks; call at start-up, not on the transfer path. The memory must outlive the
  // transport.
  virtual absl::StatusOr<MemoryRegion> RegisterMemory(MemoryKind kind, void* base, size_t length) = 0;

  // Installs the handlers. Call before the first AddPeer; not thread-safe against traffic.
  virtual void SetFetchHandler(FetchHandler handler) = 0;
  virtual void SetControlHandler(ControlHandler handler) = 0;
  virtual void SetPeerFailureHandler(PeerFailureHandler handler) = 0;

  // Asks `peer` for `dst.length` bytes described by `header` (opaque to the transport); they
  // land in `dst`, a slice of a region registered here, which must stay valid until `done`
  // runs. `done` gets OK, UNAVAILABLE (peer failed / unknown), the status the peer's handler
  // passed to Fail, CANCELLED (CancelFetch, Shutdown), or INVALID_ARGUMENT / OUT_OF_RANGE
  // when `dst` is not within a registered region (nothing is sent then).
  // Returns the id to pass to CancelFetch; 0 if this fetch cannot be cancelled (it has
  // failed already, and `done` runs or has run with that failure).
  virtual FetchId Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) = 0;

  // Ends fetch `id` early. If it is still outstanding, its `done` runs with CANCELLED as soon
  // as no byte can land in its destination any more: at once when the peer's reply has not
  // arrived (a reply arriving later is dropped and the peer's `sent` sees an error), or,
  // when the reply's bytes are already being received, once that receive has finished or
  // been torn down; such a fetch may then report its own outcome (OK: the bytes landed)
  // instead of CANCELLED. Until `done` has run the destination may still be written. No-op
  // for 0, an unknown id or a fetch that has completed. Non-blocking; any thread, callbacks
  // included.
  virtual void CancelFetch(FetchId id) = 0;

  // One-sided read of `src` (a slice of `peer`'s region, named by its remote key blob) into
  // `dst` (a slice of a local region). Both slices are checked first: INVALID_ARGUMENT for a
  // malformed key, an unknown local region or lengths that differ, OUT_OF_RANGE for a range
  // outside its region, UNIMPLEMENTED for a memory kind other than host.
  virtual void Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) = 0;

  // Sends a small control message (at most 64 KiB).
  virtual void SendControl(NodeId peer, std::string bytes, Done done) = 0;

  virtual TransportStats Stats() const = 0;

  // Stops the progress thread; outstanding operations complete with CANCELLED. Idempotent;
  // blocks until the thread has exited. After Shutdown no callback runs: an operation
  // started after Shutdown is dropped, its Done destroyed without running.
  virtual void Shutdown() = 0;
};

}  // namespace ferry::dataplane
