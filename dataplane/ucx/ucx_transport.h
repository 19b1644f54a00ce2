// The UCX implementation of the data-plane Transport (dataplane/transport/transport.h).
//
// Mechanisms
// - Fetch: active messages. The requester sends a request AM (request id, its node id, the
//   length, the caller's header bytes) over its endpoint to the peer. The peer's FetchHandler
//   answers through a FetchResponder; the reply AM (request id, status) goes back over the
//   peer's OWN endpoint to the requester, so a peer serves only nodes it has AddPeer'd.
//   A request (or control message) from a node not added yet is held for up to
//   `unknown_peer_wait_ms`, because membership can reach the requester before the responder,
//   and served in arrival order when AddPeer comes; after that it is dropped and counted in
//   TransportStats::dropped_requests, and the requester's Fetch stays outstanding until the
//   connection fails, RemovePeer or Shutdown. Payloads above `rndv_threshold` are forced onto the
//   rendezvous protocol and the requester receives them with ucp_am_recv_data_nbx straight
//   into the destination; smaller ones go eager and are copied once.
// - Read: ucp_get_nbx with the remote key unpacked once per (peer, key blob) and cached.
// - Control messages: eager AMs with their own id.
// - Failure: endpoints use UCP_ERR_HANDLING_MODE_PEER. When one fails, every outstanding
//   operation to that peer completes with UNAVAILABLE (naming the node and
//   ucs_status_string), the PeerFailureHandler runs once, and the endpoint is force-closed
//   and dropped; the next operation to the peer reconnects.
//
// Threading: one progress thread owns the UCX worker (UCS_THREAD_MODE_SINGLE). Public methods
// are thread-safe: they queue work for the progress thread and wake it through an eventfd.
// When idle the thread drains ucp_worker_progress, arms the worker and sleeps in poll() on
// the worker's event fd and the wake fd (bounded timeout), so an idle transport uses ~no CPU.
// All handlers and completions run on the progress thread. Completions and the
// PeerFailureHandler run after ucp_worker_progress returns; the FetchHandler and
// ControlHandler run inside it (their byte views point into UCX buffers), so they must not
// block. Shutdown called from any callback only requests the stop (it cannot join its own
// thread); RegisterMemory from a callback runs inline.
// Ops posted after Shutdown are dropped with their Done unrun ("no callback after Shutdown").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/transport/transport.h"

namespace ferry::dataplane {

struct UcxTransportOptions {
  // This node's ferry id (carried in requests so the peer knows whom to answer).
  NodeId self = 0;
  // Query the worker address with UCP_WORKER_ADDRESS_FLAG_NET_ONLY, so peers never assume
  // shared memory. Turn off only for tests inside one host that want shm lanes.
  bool net_only_address = true;
  // Spin on ucp_worker_progress instead of sleeping on the event fd (burns a core).
  bool busy_poll = false;
  // While operations are in flight, keep progressing for this long after the last event
  // before arming and sleeping.
  uint32_t spin_us = 50;
  // Fetch replies larger than this are sent with UCP_AM_SEND_FLAG_RNDV (zero-copy receive
  // into the destination); smaller ones with UCP_AM_SEND_FLAG_EAGER.
  size_t rndv_threshold = 8 * 1024;
  // Upper bound for poll() while idle (a missed wakeup costs at most this).
  uint32_t idle_poll_ms = 100;
  // How long a fetch request or control message from a node this transport has not
  // AddPeer'd yet is held before it is dropped. A joining node learns the membership and
  // may fetch before the responder has processed the same update; holding the request
  // serves it as soon as AddPeer runs instead of leaving the fetch to its deadline. 0 drops
  // at once. At most 1024 messages / 4 MiB are held; beyond that, new ones are dropped.
  uint32_t unknown_peer_wait_ms = 5000;
  // UCX settings ferry changes from UCX's defaults, unless the environment sets them
  // (UCX_<name> always wins). TCP segments of 512 KiB instead of 8/64 KiB: a rendezvous
  // over TCP with UCP_ERR_HANDLING_MODE_PEER moves data in AM fragments of one segment, so
  // the segment size sets the syscalls per chunk. Measured on loopback: 3.5 -> 5.7 GB/s for
  // 256 MiB pulls (docs/benchmarks.md).
  std::vector<std::pair<std::string, std::string>> ucx_defaults = {
      {"UCX_TCP_TX_SEG_SIZE", "512K"}, {"UCX_TCP_RX_SEG_SIZE", "512K"}};
  // UCP settings for this transport's context only (names without UCX_, e.g.
  // {"ADDRESS_VERSION", "v2"}), applied with ucp_config_modify over the environment. Only
  // UCP-level settings take effect this way (see ucx_defaults for transport-level ones).
  std::vector<std::pair<std::string, std::string>> ucx_config;
  // How rendezvous replies land in the destination. kUcx: UCX's own receive (zero-copy where
  // the lane can, memcpy of each fragment over TCP). kStreaming: a receive datatype whose
  // unpack copies each fragment with streaming stores (dataplane/ucx/streaming_copy.h); this
  // forces UCX's fragment path, so it is only for TCP. Measured on loopback it halves the
  // receiver's copy time but makes whole pulls 10-15% slower (docs/benchmarks.md), so it is
  // off unless asked for.
  enum class ReceiveCopy { kUcx, kStreaming };
  ReceiveCopy receive_copy = ReceiveCopy::kUcx;
  // Replies smaller than this keep UCX's copy: their destination is likely still cached.
  size_t streaming_copy_min = 256 * 1024;
};

// "ucx", "streaming" (INVALID_ARGUMENT naming the choices otherwise).
absl::StatusOr<UcxTransportOptions::ReceiveCopy> ParseReceiveCopy(std::string_view text);

// Creates the context (features AM | RMA | WAKEUP), the worker and the progress thread.
// UCX reads its configuration from the environment (UCX_TLS, UCX_NET_DEVICES, ...).
// Fails with the UCX error (e.g. UNAVAILABLE) if UCX cannot be initialised.
absl::StatusOr<std::unique_ptr<Transport>> CreateUcxTransport(const UcxTransportOptions& options);

}  // namespace ferry::dataplane
