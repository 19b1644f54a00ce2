// Structural validation of a UCX worker address that arrived from the network.
//
// ucp_ep_create trusts its address: UCX 1.13.1's ucp_address_unpack takes no length (a
// truncated blob is read past its end) and aborts the process on a version it does not know
// (ucs_assertv_always in ucp_address_unpack_header); values it does not range-check (an md
// index >= 64, a NaN bandwidth, more than 64 devices) index fixed arrays or trip assertions
// later in lane selection. Every worker address a peer supplies therefore passes
// ParseWorkerAddress before ferry stores it or hands it to UCX.
//
// The parser mirrors ucp_address_unpack (src/ucp/wireup/address.c, UCX 1.13.1) for the unpack
// flags ucp_ep_create uses (ucp_worker_default_address_pack_flags: WORKER_UUID, WORKER_NAME,
// DEVICE_ADDR, IFACE_ADDR, EP_ADDR; not TL_RSC_IDX), in non-unified mode only (the transport
// refuses to start with UCX_UNIFIED_MODE=y). Every read is bounds-checked and the walk must
// end exactly at the end of the blob: UCX packs exactly that many bytes. Beyond the structure
// it accepts only what UCX 1.13.1 itself packs: no unknown header or iface flag bits, finite
// non-negative performance attributes with a bandwidth above zero, a segment size for ifaces
// that receive active messages. The layout is documented in docs/protocol.md.
//
// Pure functions: no UCX calls, no allocation beyond the returned layout; safe on any bytes
// (the fuzz target tests/fuzz/ucx_address_fuzz.cc runs it on arbitrary input).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::dataplane::ucx {

// Limits of UCX 1.13.1 (src/ucp/core/ucp_types.h and the arrays that unpack and lane
// selection index with these values).
inline constexpr size_t kUcxMaxResources = 128;  // UCP_MAX_RESOURCES: ifaces per address
inline constexpr size_t kUcxMaxLanes = 6;        // UCP_MAX_LANES: ep addresses per iface
inline constexpr size_t kUcxMaxMds = 64;         // UCP_MAX_MDS: md index bound
// Devices per address: the device index is a bit of a uint64_t bitmap in lane selection
// (ucp_wireup_add_bw_lanes, select.c), so at most 64.
inline constexpr size_t kUcxMaxDevices = 64;

// Where the parts of a valid address lie (offsets into the blob), for tests and logs.
struct WorkerAddressLayout {
  struct Range {
    size_t offset = 0;
    size_t length = 0;
  };
  int version = 0;  // 1 or 2 (UCX's UCP_OBJECT_VERSION_V1 / _V2, packed as 0 / 1)
  size_t header_bytes = 0;            // header, uuid, client id, worker name
  std::vector<Range> device_addresses;  // one per device, in order (may be empty ranges)
  std::vector<Range> iface_addresses;   // one per iface, in order
  size_t ep_addresses = 0;
};

// The layout of `blob` if UCX 1.13.1 can unpack it safely; otherwise INVALID_ARGUMENT
// "ucx worker address (N bytes): <what is wrong> at offset K".
absl::StatusOr<WorkerAddressLayout> ParseWorkerAddress(std::string_view blob);

// ParseWorkerAddress without the layout.
[[nodiscard]] absl::Status ValidateWorkerAddress(std::string_view blob);

}  // namespace ferry::dataplane::ucx
