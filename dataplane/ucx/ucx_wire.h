// Wire format of the UCX transport's active messages and address blob (internal).
//
// All integers are in host byte order: ferry nodes of one cluster share an architecture
// (x86-64 or aarch64, both little-endian). Documented in docs/protocol.md ("UCX data plane").
//
// Address blob: "FUX1" | node id (8 bytes) | ucp worker address bytes (validated on decode,
//   dataplane/ucx/ucx_address.h).
// AM kFetchRequestAm: header RequestHeader; payload = the caller's opaque fetch header
//   (<= kMaxFetchHeaderBytes), always eager.
// AM kFetchReplyAm: header ReplyHeader; payload = the data (code == 0; eager up to the
//   rendezvous threshold, rendezvous above it) or the error message (code != 0, eager).
// AM kControlAm: header ControlHeader; payload = the message bytes (<= kMaxControlBytes), eager.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "dataplane/transport/transport.h"
#include "dataplane/ucx/ucx_address.h"

namespace ferry::dataplane::ucx {

inline constexpr unsigned kFetchRequestAm = 0x4601;
inline constexpr unsigned kFetchReplyAm = 0x4602;
inline constexpr unsigned kControlAm = 0x4603;

inline constexpr size_t kMaxFetchHeaderBytes = 64 * 1024;
inline constexpr size_t kMaxControlBytes = 64 * 1024;

struct RequestHeader {
  uint64_t request_id;
  uint64_t requester;  // node id the reply must go to
  uint64_t length;     // bytes requested
};

struct ReplyHeader {
  uint64_t request_id;
  uint64_t responder;  // node id of the replying node (must be the node asked)
  int32_t code;  // absl::StatusCode; 0 = data follows
  uint32_t reserved;
  uint64_t length;  // payload bytes
};

struct ControlHeader {
  uint64_t sender;
};

// The fixed AM header H (RequestHeader, ReplyHeader, ControlHeader) as a peer sent it, or
// nullopt unless `header` is exactly one H. Any bit pattern is a valid H; what its fields
// name (peers, request ids, lengths) is checked where they are used.
template <typename H>
std::optional<H> DecodeHeader(const void* header, size_t header_length) {
  if (header == nullptr || header_length != sizeof(H)) return std::nullopt;
  H h;
  std::memcpy(&h, header, sizeof(H));
  return h;
}

template <typename H>
std::string EncodeHeader(const H& h) {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(H));
}

// The status code a ReplyHeader carries: a peer's code outside absl's range is UNKNOWN, and
// so is 0 (OK), which never travels with an error message.
inline absl::StatusCode ReplyErrorCode(int32_t code) {
  if (code <= 0 || code > static_cast<int32_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(code);
}

inline constexpr std::string_view kAddressMagic = "FUX1";

inline std::string EncodeAddress(NodeId self, std::string_view worker_address) {
  std::string out(kAddressMagic);
  out.append(reinterpret_cast<const char*>(&self), sizeof(self));
  out.append(worker_address);
  return out;
}

struct DecodedAddress {
  NodeId node;
  std::string_view worker_address;  // points into the blob passed to DecodeAddress
};

// Splits a blob made by EncodeAddress and validates the UCX worker address in it
// (ucx_address.h), so nothing UCX cannot unpack safely gets past here. INVALID_ARGUMENT
// saying what is wrong otherwise.
inline absl::StatusOr<DecodedAddress> DecodeAddress(std::string_view blob) {
  constexpr size_t kPrefix = 4 + sizeof(NodeId);
  if (blob.size() < kPrefix || blob.substr(0, 4) != kAddressMagic) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a ferry UCX address blob (", blob.size(), " bytes, expected \"FUX1\", node id, "
        "UCX worker address)"));
  }
  DecodedAddress out;
  std::memcpy(&out.node, blob.data() + 4, sizeof(NodeId));
  out.worker_address = blob.substr(kPrefix);
  if (absl::Status s = ValidateWorkerAddress(out.worker_address); !s.ok()) return s;
  return out;
}

}  // namespace ferry::dataplane::ucx
