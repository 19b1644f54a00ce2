// The walk below follows ucp_address_unpack (UCX 1.13.1, src/ucp/wireup/address.c) step by
// step; each step names the UCX function whose reads it bounds. Constants are UCX's
// (address.c) and are restated here because this file must not depend on UCX (the fuzz
// target links it alone).
#include "dataplane/ucx/ucx_address.h"

#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ferry::dataplane::ucx {
namespace {

// Header (ucp_address_unpack_header): version in the low nibble of byte 0; v1 carries the
// flags in the high nibble, v2 in byte 1.
constexpr uint8_t kVersionV1 = 0;  // UCP_OBJECT_VERSION_V1
constexpr uint8_t kVersionV2 = 1;  // UCP_OBJECT_VERSION_V2
constexpr uint8_t kHeaderDebugInfo = 1 << 0;  // UCP_ADDRESS_HEADER_FLAG_DEBUG_INFO
constexpr uint8_t kHeaderWorkerUuid = 1 << 1;
constexpr uint8_t kHeaderClientId = 1 << 2;
constexpr uint8_t kHeaderAmOnly = 1 << 3;
constexpr uint8_t kHeaderKnown = kHeaderDebugInfo | kHeaderWorkerUuid | kHeaderClientId | kHeaderAmOnly;

constexpr uint8_t kNullResource = 0xff;  // UCP_NULL_RESOURCE: empty address list

// md byte (ucp_address_unpack_md_info).
constexpr uint8_t kMdEmptyDev = 0x80;  // UCP_ADDRESS_FLAG_MD_EMPTY_DEV
constexpr uint8_t kMdMaskV1 = 0x1f;    // UCP_ADDRESS_FLAG_MD_MASK_V1 (ALLOC, REG flags above)
constexpr uint8_t kMdMaskV2 = 0x7f;    // UCP_ADDRESS_FLAG_MD_MASK; == mask: extended

// Device length byte.
constexpr uint8_t kFlagLast = 0x80;       // UCP_ADDRESS_FLAG_LAST
constexpr uint8_t kDevNumPaths = 0x40;    // UCP_ADDRESS_FLAG_NUM_PATHS
constexpr uint8_t kDevSysDevice = 0x20;   // UCP_ADDRESS_FLAG_SYS_DEVICE
constexpr uint8_t kDevLenMask = 0x1f;     // UCP_ADDRESS_DEVICE_LEN_MASK

// Iface length byte and ep lane byte.
constexpr uint8_t kIfaceHasEpAddr = 0x40;  // UCP_ADDRESS_FLAG_HAS_EP_ADDR
constexpr uint8_t kIfaceLenMask = 0x3f;    // UCP_ADDRESS_IFACE_LEN_MASK

// Packed iface attributes (ucp_address_packed_iface_attr_t, ..._v2_packed_iface_attr_t).
constexpr size_t kIfaceAttrV1Bytes = 16;  // float overhead, bandwidth, lat_ovh; u32 prio+flags
constexpr size_t kIfaceAttrV2Bytes = 8;   // fp8 overhead, bandwidth, latency; u8 prio;
                                          // u16 seg_size; u16 flags
constexpr uint16_t kV2IfaceFlagAmSync = 1 << 1;   // UCP_ADDR_IFACE_FLAG_AM_SYNC
constexpr uint16_t kV2IfaceFlagCbAsync = 1 << 2;  // UCP_ADDR_IFACE_FLAG_CB_ASYNC
constexpr uint16_t kV2IfaceFlagsKnown = 0x3ff;    // UCP_ADDR_IFACE_FLAG_* bits 0..9
constexpr uint8_t kFp8ExponentMask = 0x0f;         // ucs_fp8_t: exponent nibble; 15 = NaN/inf

// A cursor over the blob; every read checks the bytes are there.
class Reader {
 public:
  explicit Reader(std::string_view blob) : blob_(blob) {}
  size_t offset() const { return pos_; }
  size_t left() const { return blob_.size() - pos_; }
  bool Byte(uint8_t* v) {
    if (left() < 1) return false;
    *v = static_cast<uint8_t>(blob_[pos_++]);
    return true;
  }
  bool Peek(uint8_t* v) const {
    if (left() < 1) return false;
    *v = static_cast<uint8_t>(blob_[pos_]);
    return true;
  }
  bool Read(void* dst, size_t n) {
    if (left() < n) return false;
    std::memcpy(dst, blob_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool Skip(size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  std::string_view blob_;
  size_t pos_ = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view blob) : blob_(blob), r_(blob) {}
  absl::StatusOr<WorkerAddressLayout> Run();

 private:
  absl::Status Error(absl::string_view what, size_t offset) const {
    return absl::InvalidArgumentError(absl::StrCat("ucx worker address (", blob_.size(),
                                                   " bytes): ", what, " at offset ", offset));
  }
  absl::Status Truncated(absl::string_view what) const {
    return Error(absl::StrCat("truncated in ", what), r_.offset());
  }
  absl::Status Header();
  absl::Status Device(size_t index, bool* last);
  absl::Status Iface(bool* last);
  absl::Status IfaceAttrs();
  absl::Status EpAddresses();
  // ucp_address_unpack_byte_extended: `mask` bits of the byte; in v2 the value `mask`
  // itself means "the value is the next byte".
  absl::Status Extended(uint8_t first, uint8_t mask, absl::string_view what, size_t* value);

  std::string_view blob_;
  Reader r_;
  WorkerAddressLayout layout_;
  bool v2_ = false;
  size_t ifaces_ = 0;
};

absl::Status Parser::Extended(uint8_t first, uint8_t mask, absl::string_view what,
                              size_t* value) {
  *value = first & mask;
  if (v2_ && *value == mask) {
    uint8_t next;
    if (!r_.Byte(&next)) return Truncated(absl::StrCat(what, " (extended byte)"));
    *value = next;
  }
  return absl::OkStatus();
}

// ucp_address_unpack_header, then the uuid, client id and worker name that ucp_address_unpack
// skips with the default unpack flags.
absl::Status Parser::Header() {
  uint8_t h0;
  if (!r_.Byte(&h0)) return Truncated("the header");
  const uint8_t version = h0 & 0x0f;
  uint8_t flags;
  if (version == kVersionV1) {
    flags = h0 >> 4;
  } else if (version == kVersionV2) {
    v2_ = true;
    // UCX ignores the high nibble of a v2 header byte (1.13.1 packs 0 there).
    if (!r_.Byte(&flags)) return Truncated("the v2 header flags");
    if ((flags & ~kHeaderKnown) != 0) {
      return Error(absl::StrCat("unknown header flags 0x", absl::Hex(flags & ~kHeaderKnown)), 1);
    }
  } else {
    return Error(absl::StrCat("address version ", version,
                              " is not one UCX 1.13 knows (0 = v1, 1 = v2)"), 0);
  }
  layout_.version = v2_ ? 2 : 1;
  // v1 addresses always carry the uuid when the unpacker asks for it (the flag dates from
  // UCX 1.12), and ucp_ep_create asks.
  if (!v2_ || (flags & kHeaderWorkerUuid)) {
    if (!r_.Skip(8)) return Truncated("the worker uuid");
  }
  if (flags & kHeaderClientId) {
    if (!r_.Skip(8)) return Truncated("the client id");
  }
  if (flags & kHeaderDebugInfo) {  // worker name: length byte + bytes
    uint8_t len;
    if (!r_.Byte(&len) || !r_.Skip(len)) return Truncated("the worker name");
  }
  layout_.header_bytes = r_.offset();
  return absl::OkStatus();
}

absl::Status Parser::IfaceAttrs() {
  const size_t at = r_.offset();
  if (!v2_) {
    float overhead, bandwidth, lat_ovh;
    uint32_t prio_flags;
    if (!r_.Read(&overhead, 4) || !r_.Read(&bandwidth, 4) || !r_.Read(&lat_ovh, 4) ||
        !r_.Read(&prio_flags, 4)) {
      return Truncated("iface attributes");
    }
    // A NaN or negative score trips ucs_assert in lane selection (ucp_wireup_init_select_info);
    // UCX itself refuses a zero bandwidth. A negative bandwidth is UCX <= 1.11's "shared"
    // encoding and is legal.
    if (!std::isfinite(overhead) || !std::isfinite(bandwidth) || !std::isfinite(lat_ovh)) {
      return Error("non-finite iface attribute (overhead, bandwidth or latency)", at);
    }
    if (overhead < 0 || lat_ovh < 0) return Error("negative iface overhead or latency", at);
    if (bandwidth == 0) return Error("zero iface bandwidth", at);
    static_assert(3 * sizeof(float) + sizeof(uint32_t) == kIfaceAttrV1Bytes);
    return absl::OkStatus();
  }
  uint8_t attr[kIfaceAttrV2Bytes];
  if (!r_.Read(attr, sizeof(attr))) return Truncated("iface attributes");
  for (int i = 0; i < 3; ++i) {  // overhead, bandwidth, latency
    if ((attr[i] & kFp8ExponentMask) == kFp8ExponentMask) {
      return Error("non-finite iface attribute (fp8 NaN/infinity)", at + i);
    }
  }
  if (attr[1] == 0) return Error("zero iface bandwidth", at + 1);
  uint16_t seg_size, flags;
  std::memcpy(&seg_size, attr + 4, 2);
  std::memcpy(&flags, attr + 6, 2);
  if ((flags & ~kV2IfaceFlagsKnown) != 0) {
    return Error(absl::StrCat("unknown iface flags 0x", absl::Hex(flags & ~kV2IfaceFlagsKnown)),
                 at + 6);
  }
  if ((flags & (kV2IfaceFlagAmSync | kV2IfaceFlagCbAsync)) && seg_size == 0) {
    return Error("iface receives active messages but has segment size 0", at + 4);
  }
  return absl::OkStatus();
}

// The ep addresses after an iface address with HAS_EP_ADDR: length byte, bytes, lane byte
// (lane index | LAST).
absl::Status Parser::EpAddresses() {
  for (size_t n = 0;; ++n) {
    if (n >= kUcxMaxLanes) {
      return Error(absl::StrCat("more than ", kUcxMaxLanes, " ep addresses on one iface"),
                   r_.offset());
    }
    uint8_t len, lane;
    if (!r_.Byte(&len)) return Truncated("an ep address length");
    if (!r_.Skip(len)) return Truncated("an ep address");
    const size_t at = r_.offset();
    if (!r_.Byte(&lane)) return Truncated("an ep lane index");
    if ((lane & kIfaceLenMask) >= kUcxMaxLanes || (lane & kIfaceHasEpAddr)) {
      return Error(absl::StrCat("ep lane byte 0x", absl::Hex(lane), " (lane must be < ",
                                kUcxMaxLanes, ")"), at);
    }
    ++layout_.ep_addresses;
    if (lane & kFlagLast) return absl::OkStatus();
  }
}

// One iface: tl name checksum, packed attributes, address length (+ LAST, HAS_EP_ADDR),
// address bytes, ep addresses.
absl::Status Parser::Iface(bool* last) {
  if (ifaces_ >= kUcxMaxResources) {
    return Error(absl::StrCat("more than ", kUcxMaxResources, " ifaces"), r_.offset());
  }
  ++ifaces_;
  if (!r_.Skip(2)) return Truncated("a tl name checksum");
  if (absl::Status s = IfaceAttrs(); !s.ok()) return s;
  uint8_t b;
  if (!r_.Byte(&b)) return Truncated("an iface address length");
  *last = (b & kFlagLast) != 0;
  size_t len;
  if (absl::Status s = Extended(b, kIfaceLenMask, "an iface address length", &len); !s.ok()) {
    return s;
  }
  layout_.iface_addresses.push_back({r_.offset(), len});
  if (!r_.Skip(len)) return Truncated("an iface address");
  return (b & kIfaceHasEpAddr) ? EpAddresses() : absl::OkStatus();
}

// One device: md index (+ EMPTY), device address length (+ LAST, NUM_PATHS, SYS_DEVICE),
// number of paths, system device, device address bytes, then its ifaces.
absl::Status Parser::Device(size_t index, bool* last) {
  if (index >= kUcxMaxDevices) {
    return Error(absl::StrCat("more than ", kUcxMaxDevices, " devices"), r_.offset());
  }
  const size_t md_at = r_.offset();
  uint8_t b;
  if (!r_.Byte(&b)) return Truncated("a device md index");
  const bool empty = (b & kMdEmptyDev) != 0;
  size_t md_index;
  if (absl::Status s = Extended(b, v2_ ? kMdMaskV2 : kMdMaskV1, "a device md index", &md_index);
      !s.ok()) {
    return s;
  }
  if (md_index >= kUcxMaxMds) {
    return Error(absl::StrCat("md index ", md_index, " (must be < ", kUcxMaxMds, ")"), md_at);
  }
  if (!r_.Byte(&b)) return Truncated("a device address length");
  *last = (b & kFlagLast) != 0;
  size_t len;
  if (absl::Status s = Extended(b, kDevLenMask, "a device address length", &len); !s.ok()) {
    return s;
  }
  if (b & kDevNumPaths) {
    const size_t at = r_.offset();
    uint8_t paths;
    if (!r_.Byte(&paths)) return Truncated("a device path count");
    if (paths == 0) return Error("device with 0 paths", at);
  }
  if ((b & kDevSysDevice) && !r_.Skip(1)) return Truncated("a system device id");
  layout_.device_addresses.push_back({r_.offset(), len});
  if (!r_.Skip(len)) return Truncated("a device address");
  for (bool last_iface = empty; !last_iface;) {
    if (absl::Status s = Iface(&last_iface); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkerAddressLayout> Parser::Run() {
  if (absl::Status s = Header(); !s.ok()) return s;
  uint8_t b;
  if (!r_.Peek(&b)) return Truncated("the device list");
  if (b == kNullResource) {
    // UCX accepts an empty list, but an endpoint to it cannot carry anything.
    return Error("the address lists no devices", r_.offset());
  }
  bool last = false;
  for (size_t i = 0; !last; ++i) {
    if (absl::Status s = Device(i, &last); !s.ok()) return s;
  }
  if (r_.left() != 0) {
    return Error(absl::StrCat(r_.left(), " trailing bytes after the last device"), r_.offset());
  }
  return std::move(layout_);
}

}  // namespace

absl::StatusOr<WorkerAddressLayout> ParseWorkerAddress(std::string_view blob) {
  return Parser(blob).Run();
}

absl::Status ValidateWorkerAddress(std::string_view blob) {
  return ParseWorkerAddress(blob).status();
}

}  // namespace ferry::dataplane::ucx
