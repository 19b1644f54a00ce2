#include "dataplane/ucx/ucx_handles.h"

#include <cstdio>
#include <cstring>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace ferry::dataplane::ucx {

absl::Status UcsError(ucs_status_t status, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", ucs_status_string(status));
  switch (status) {
    case UCS_ERR_CANCELED:
      return absl::CancelledError(msg);
    case UCS_ERR_NO_MEMORY:
      return absl::ResourceExhaustedError(msg);
    case UCS_ERR_INVALID_PARAM:
      return absl::InvalidArgumentError(msg);
    case UCS_ERR_UNSUPPORTED:
      return absl::UnimplementedError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

bool IsConnectionLoss(ucs_status_t status) {
  switch (status) {
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_REJECTED:
      return true;
    default:
      return false;
  }
}

absl::Status ConnectionLost(uint64_t peer, ucs_status_t status) {
  const char* meaning = "";
  switch (status) {
    case UCS_ERR_ENDPOINT_TIMEOUT:
      // uct_tcp_ep (UCX 1.13) reports every TCP connection the peer closed or reset this
      // way, so over TCP it is what a killed or exited node looks like.
      meaning = " (the TCP connection was closed or reset, or the node stopped answering: it "
                "exited, was killed or is unreachable)";
      break;
    case UCS_ERR_CONNECTION_RESET:
      meaning = " (the node reset the connection: it exited or was killed)";
      break;
    case UCS_ERR_NOT_CONNECTED:
      meaning = " (the node closed the connection)";
      break;
    case UCS_ERR_UNREACHABLE:
      meaning = " (nothing listens at its address: the node is gone or its address is stale)";
      break;
    case UCS_ERR_TIMED_OUT:
      meaning = " (the node did not answer in time)";
      break;
    case UCS_ERR_REJECTED:
      meaning = " (the node refused the connection)";
      break;
    default:
      break;
  }
  return absl::UnavailableError(
      absl::StrCat("connection to node ", peer, " lost: ", ucs_status_string(status), meaning));
}

// ---- UcxContext ---------------------------------------------------------------------------

UcxContext& UcxContext::operator=(UcxContext&& o) noexcept {
  if (this != &o) {
    Reset();
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}

namespace {

// The configuration as UCX resolved it (environment and config files), one "UCX_X=v" a line.
std::string PrintConfig(const ucp_config_t* config) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  if (f == nullptr) return {};
  ucp_config_print(config, f, nullptr, UCS_CONFIG_PRINT_CONFIG);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

}  // namespace

absl::StatusOr<UcxContext> UcxContext::Create(
    uint64_t features, const std::vector<std::pair<std::string, std::string>>& defaults,
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  // ucp_config_modify accepts transport-level names (TCP_*) without error but UCX 1.13 does
  // not apply them to the transports (measured), so defaults go into the environment
  // before the configuration is read; setenv(.., 0) keeps what the user exported.
  for (const auto& [name, value] : defaults) {
    if (setenv(name.c_str(), value.c_str(), /*overwrite=*/0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("ucx: cannot set default ", name, "=", value));
    }
  }
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_config_read");
  for (const auto& [name, value] : overrides) {
    st = ucp_config_modify(config, name.c_str(), value.c_str());
    if (st != UCS_OK) {
      ucp_config_release(config);
      return UcsError(st, absl::StrCat("ucx: ucp_config_modify(", name, "=", value, ")"));
    }
  }
  // Peer addresses are validated against the non-unified layout (ucx_address.h); unified
  // mode packs resource indices instead of iface attributes.
  if (PrintConfig(config).find("UCX_UNIFIED_MODE=y") != std::string::npos) {
    ucp_config_release(config);
    return absl::FailedPreconditionError(
        "ucx: UCX_UNIFIED_MODE=y is not supported: ferry validates peer worker addresses in "
        "UCX's non-unified format; unset UCX_UNIFIED_MODE (or set it to n)");
  }
  ucp_params_t params = {};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = features;
  params.mt_workers_shared = 0;  // one worker, owned by one thread
  ucp_context_h h = nullptr;
  st = ucp_init(&params, config, &h);
  ucp_config_release(config);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_init");
  return UcxContext(h);
}

void UcxContext::Reset() {
  if (h_ != nullptr) ucp_cleanup(std::exchange(h_, nullptr));
}

// ---- UcxWorker ----------------------------------------------------------------------------

UcxWorker& UcxWorker::operator=(UcxWorker&& o) noexcept {
  if (this != &o) {
    Reset();
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}

absl::StatusOr<UcxWorker> UcxWorker::Create(ucp_context_h context) {
  ucp_worker_params_t params = {};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucp_worker_h h = nullptr;
  ucs_status_t st = ucp_worker_create(context, &params, &h);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_worker_create");
  return UcxWorker(h);
}

absl::StatusOr<std::string> UcxWorker::Address(bool net_only) const {
  ucp_worker_attr_t attr = {};
  attr.field_mask = UCP_WORKER_ATTR_FIELD_ADDRESS | UCP_WORKER_ATTR_FIELD_ADDRESS_FLAGS;
  attr.address_flags = net_only ? UCP_WORKER_ADDRESS_FLAG_NET_ONLY : 0;
  ucs_status_t st = ucp_worker_query(h_, &attr);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_worker_query(address)");
  std::string out(reinterpret_cast<const char*>(attr.address), attr.address_length);
  ucp_worker_release_address(h_, attr.address);
  return out;
}

void UcxWorker::Reset() {
  if (h_ != nullptr) ucp_worker_destroy(std::exchange(h_, nullptr));
}

// ---- UcxEndpoint --------------------------------------------------------------------------

UcxEndpoint& UcxEndpoint::operator=(UcxEndpoint&& o) noexcept {
  if (this != &o) {
    Reset();
    h_ = std::exchange(o.h_, nullptr);
    address_ = std::move(o.address_);
  }
  return *this;
}

absl::StatusOr<UcxEndpoint> UcxEndpoint::Create(ucp_worker_h worker, std::string_view address,
                                                ucp_err_handler_cb_t on_error, void* arg) {
  // Value-initialised: the padding is zero.
  auto padded = std::make_unique<char[]>(address.size() + kAddressPadding);
  std::memcpy(padded.get(), address.data(), address.size());
  ucp_ep_params_t params = {};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(padded.get());
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = on_error;
  params.err_handler.arg = arg;
  ucp_ep_h h = nullptr;
  ucs_status_t st = ucp_ep_create(worker, &params, &h);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_ep_create");
  return UcxEndpoint(h, std::move(padded));
}

void UcxEndpoint::Reset() {
  if (h_ == nullptr) return;
  ucp_request_param_t param = {};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucs_status_ptr_t req = ucp_ep_close_nbx(std::exchange(h_, nullptr), &param);
  // NULL: closed at once. Error: the endpoint is released anyway in force mode. A request:
  // UCX frees it when the close completes.
  if (req != nullptr && !UCS_PTR_IS_ERR(req)) ucp_request_free(req);
  address_.reset();
}

// ---- UcxMemHandle -------------------------------------------------------------------------

UcxMemHandle& UcxMemHandle::operator=(UcxMemHandle&& o) noexcept {
  if (this != &o) {
    Reset();
    context_ = o.context_;
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}

absl::StatusOr<UcxMemHandle> UcxMemHandle::Map(ucp_context_h context, void* base,
                                               size_t length) {
  ucp_mem_map_params_t params = {};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_PROT;
  params.address = base;
  params.length = length;
  params.prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_LOCAL_WRITE |
                UCP_MEM_MAP_PROT_REMOTE_READ | UCP_MEM_MAP_PROT_REMOTE_WRITE;
  ucp_mem_h h = nullptr;
  ucs_status_t st = ucp_mem_map(context, &params, &h);
  if (st != UCS_OK) {
    return UcsError(st, absl::StrCat("ucx: ucp_mem_map(", length, " bytes)"));
  }
  return UcxMemHandle(context, h);
}

absl::StatusOr<std::string> UcxMemHandle::PackRkey() const {
  void* buf = nullptr;
  size_t size = 0;
  ucs_status_t st = ucp_rkey_pack(context_, h_, &buf, &size);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_rkey_pack");
  std::string out(static_cast<const char*>(buf), size);
  ucp_rkey_buffer_release(buf);
  return out;
}

void UcxMemHandle::Reset() {
  if (h_ != nullptr) ucp_mem_unmap(context_, std::exchange(h_, nullptr));
}

// ---- UcxRkey ------------------------------------------------------------------------------

UcxRkey& UcxRkey::operator=(UcxRkey&& o) noexcept {
  if (this != &o) {
    Reset();
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}

absl::StatusOr<UcxRkey> UcxRkey::Unpack(ucp_ep_h ep, std::string_view packed) {
  ucp_rkey_h h = nullptr;
  ucs_status_t st = ucp_ep_rkey_unpack(ep, packed.data(), &h);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_ep_rkey_unpack");
  return UcxRkey(h);
}

void UcxRkey::Reset() {
  if (h_ != nullptr) ucp_rkey_destroy(std::exchange(h_, nullptr));
}

}  // namespace ferry::dataplane::ucx
