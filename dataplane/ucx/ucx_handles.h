// Thin RAII owners of UCX handles. This directory is the only place in ferry where ucp_* and
// ucs_* appear (STYLE.md rule 5).
//
// Each wrapper owns exactly one handle and frees it in its destructor with the matching UCX
// call. They are move-only. None of them is thread-safe: a worker and everything created on
// it (endpoints, unpacked rkeys) belong to the worker's progress thread; a context and its
// memory handles may be used from the thread that created them while no other thread uses
// the context (the transport serialises this through its progress thread).
//
// Destruction order matters and is the owner's job: rkeys before the endpoint they were
// unpacked on, endpoints before their worker, memory handles and workers before the context.
#pragma once

#include <ucp/api/ucp.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::dataplane::ucx {

// "<what>: <ucs_status_string(status)>". Code: CANCELLED for UCS_ERR_CANCELED,
// RESOURCE_EXHAUSTED for UCS_ERR_NO_MEMORY, INVALID_ARGUMENT for UCS_ERR_INVALID_PARAM,
// UNIMPLEMENTED for UCS_ERR_UNSUPPORTED, UNAVAILABLE for everything else (transport and
// peer errors).
absl::Status UcsError(ucs_status_t status, absl::string_view what);

// True for the statuses UCX reports when the connection to a peer is gone (reset, closed,
// timed out, unreachable, rejected).
bool IsConnectionLoss(ucs_status_t status);

// "connection to node <peer> lost: <ucs_status_string> (<what it means>)", UNAVAILABLE.
// For a status that IsConnectionLoss.
absl::Status ConnectionLost(uint64_t peer, ucs_status_t status);

// Owns a ucp_context_h (ucp_cleanup).
class UcxContext {
 public:
  UcxContext() = default;
  explicit UcxContext(ucp_context_h h) : h_(h) {}
  UcxContext(UcxContext&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UcxContext& operator=(UcxContext&& o) noexcept;
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;
  ~UcxContext() { Reset(); }

  // Reads the UCX configuration from the environment (UCX_TLS, UCX_NET_DEVICES, ...) and
  // initialises a context with `features` (UCP_FEATURE_* bits).
  // `defaults`: UCX variables (full names, e.g. UCX_TCP_TX_SEG_SIZE) set in this process's
  // environment unless already set there (the user's setting always wins).
  // `overrides`: UCP settings (names without the UCX_ prefix, e.g. ADDRESS_VERSION) applied
  // to this context only with ucp_config_modify, over the environment.
  // FAILED_PRECONDITION if the configuration asks for UCX_UNIFIED_MODE (peer addresses are
  // validated in the non-unified format, ucx_address.h).
  static absl::StatusOr<UcxContext> Create(
      uint64_t features, const std::vector<std::pair<std::string, std::string>>& defaults = {},
      const std::vector<std::pair<std::string, std::string>>& overrides = {});
  ucp_context_h get() const { return h_; }
  void Reset();

 private:
  ucp_context_h h_ = nullptr;
};

// Owns a ucp_worker_h (ucp_worker_destroy).
class UcxWorker {
 public:
  UcxWorker() = default;
  explicit UcxWorker(ucp_worker_h h) : h_(h) {}
  UcxWorker(UcxWorker&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UcxWorker& operator=(UcxWorker&& o) noexcept;
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;
  ~UcxWorker() { Reset(); }

  // A worker in UCS_THREAD_MODE_SINGLE: only one thread may ever call into it.
  static absl::StatusOr<UcxWorker> Create(ucp_context_h context);
  ucp_worker_h get() const { return h_; }
  // The worker's address, queried with UCP_WORKER_ADDRESS_FLAG_NET_ONLY when `net_only`.
  absl::StatusOr<std::string> Address(bool net_only) const;
  void Reset();

 private:
  ucp_worker_h h_ = nullptr;
};

// Owns a ucp_ep_h. Reset()/destruction closes it with ucp_ep_close_nbx in FORCE mode (all
// its outstanding requests complete with UCS_ERR_CANCELED); if UCX returns a request, it is
// handed back to UCX with ucp_request_free, which releases it once the close completes (the
// worker must be progressed, and it must outlive the close).
class UcxEndpoint {
 public:
  UcxEndpoint() = default;
  UcxEndpoint(UcxEndpoint&& o) noexcept
      : h_(std::exchange(o.h_, nullptr)), address_(std::move(o.address_)) {}
  UcxEndpoint& operator=(UcxEndpoint&& o) noexcept;
  UcxEndpoint(const UcxEndpoint&) = delete;
  UcxEndpoint& operator=(const UcxEndpoint&) = delete;
  ~UcxEndpoint() { Reset(); }

  // Zero bytes after the copy of the address UCX is given (see Create).
  static constexpr size_t kAddressPadding = 256;

  // Connects to `address` (a blob from UcxWorker::Address, already validated with
  // ValidateWorkerAddress) with UCP_ERR_HANDLING_MODE_PEER; `on_error(arg, ep, status)` runs
  // on the worker's thread, inside ucp_worker_progress. UCX gets a copy of the address
  // followed by kAddressPadding zero bytes, owned by the endpoint: ucp_address_unpack takes no
  // length, so any bounded over-read lands in memory ferry owns.
  static absl::StatusOr<UcxEndpoint> Create(ucp_worker_h worker, std::string_view address,
                                            ucp_err_handler_cb_t on_error, void* arg);
  ucp_ep_h get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  void Reset();

 private:
  UcxEndpoint(ucp_ep_h h, std::unique_ptr<char[]> address)
      : h_(h), address_(std::move(address)) {}
  ucp_ep_h h_ = nullptr;
  std::unique_ptr<char[]> address_;  // the padded copy UCX was given
};

// Owns a ucp_mem_h (ucp_mem_unmap on its context).
class UcxMemHandle {
 public:
  UcxMemHandle() = default;
  UcxMemHandle(ucp_context_h context, ucp_mem_h h) : context_(context), h_(h) {}
  UcxMemHandle(UcxMemHandle&& o) noexcept
      : context_(o.context_), h_(std::exchange(o.h_, nullptr)) {}
  UcxMemHandle& operator=(UcxMemHandle&& o) noexcept;
  UcxMemHandle(const UcxMemHandle&) = delete;
  UcxMemHandle& operator=(const UcxMemHandle&) = delete;
  ~UcxMemHandle() { Reset(); }

  // Maps (registers) [base, base+length) for local and remote read/write access.
  static absl::StatusOr<UcxMemHandle> Map(ucp_context_h context, void* base, size_t length);
  // The packed remote key (ucp_rkey_pack) a peer unpacks to read this region.
  absl::StatusOr<std::string> PackRkey() const;
  ucp_mem_h get() const { return h_; }
  void Reset();

 private:
  ucp_context_h context_ = nullptr;
  ucp_mem_h h_ = nullptr;
};

// Owns an unpacked remote key (ucp_rkey_destroy). Must be destroyed before the endpoint it
// was unpacked on.
class UcxRkey {
 public:
  UcxRkey() = default;
  explicit UcxRkey(ucp_rkey_h h) : h_(h) {}
  UcxRkey(UcxRkey&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UcxRkey& operator=(UcxRkey&& o) noexcept;
  UcxRkey(const UcxRkey&) = delete;
  UcxRkey& operator=(const UcxRkey&) = delete;
  ~UcxRkey() { Reset(); }

  static absl::StatusOr<UcxRkey> Unpack(ucp_ep_h ep, std::string_view packed);
  ucp_rkey_h get() const { return h_; }
  void Reset();

 private:
  ucp_rkey_h h_ = nullptr;
};

}  // namespace ferry::dataplane::ucx
