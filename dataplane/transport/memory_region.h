// Registered memory regions: what a Transport moves bytes between (transport.h).
//
// A region is memory of one kind (host now; CUDA device later) registered once with one
// transport, at start-up (registration is slow: UCX maps it, verbs pins it and gets an
// lkey/rkey). Registration returns a MemoryRegion: a handle (RegionId) that names the region
// in local operations, and a remote key blob that a peer needs to read from it.
// - A local range is a LocalSlice: {region handle, offset, length}. The transport resolves
//   it against its own region table (UCX: the registration to pass as the memory handle;
//   verbs: the lkey) and refuses a range outside the region.
// - A remote range is a RemoteSlice: {the remote region's key blob, offset, length}. The blob
//   is self-describing (RemoteKey: memory kind, the region's address and length in the
//   owner's address space, and the transport's own key: UCX's packed rkey, the verbs rkey),
//   so a reader checks the range before it posts anything.
// Every offset/length is checked overflow-safe (CheckRange): INVALID_ARGUMENT for a region
// this transport does not know, OUT_OF_RANGE for a range that does not fit.
// Only host memory is supported; other kinds are refused with UNIMPLEMENTED naming the kind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace ferry::dataplane {

enum class MemoryKind : uint8_t {
  kHost = 0,        // ordinary (possibly shared, memfd) host memory
  kCudaDevice = 1,  // device memory of a CUDA GPU (not supported yet)
};

// "host", "cuda-device", or "kind N" for a value outside the enum.
std::string MemoryKindName(MemoryKind kind);
// UNIMPLEMENTED naming `kind` and `what` unless the kind is supported (host).
[[nodiscard]] absl::Status CheckSupportedKind(MemoryKind kind, absl::string_view what);

// Names a region registered with one transport. 0 names none: only an empty slice may use it.
using RegionId = uint32_t;
inline constexpr RegionId kNoRegion = 0;

// [offset, offset+length) of a local registered region.
struct LocalSlice {
  RegionId region = kNoRegion;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// What RegisterMemory returns.
struct MemoryRegion {
  RegionId id = kNoRegion;
  MemoryKind kind = MemoryKind::kHost;
  void* base = nullptr;
  size_t length = 0;
  std::string remote_key;  // blob a peer passes in RemoteSlice to read from this region

  // The slice [offset, offset+length) of this region (not checked here; the transport does).
  LocalSlice Slice(uint64_t offset, uint64_t slice_length) const {
    return LocalSlice{id, offset, slice_length};
  }
};

// [offset, offset+length) of a peer's registered region, named by its remote key blob.
struct RemoteSlice {
  std::string remote_key;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// OK if [offset, offset+length) lies within [0, region_length), computed without overflow;
// otherwise OUT_OF_RANGE naming `what`, the range and the region's length.
[[nodiscard]] absl::Status CheckRange(absl::string_view what, uint64_t region_length, uint64_t offset,
                                      uint64_t length);

// The decoded remote key blob. Encoding (little-endian, 22 bytes + transport key):
//   u8 version (1) | u8 kind | u64 address | u64 length | u32 transport key length | bytes
struct RemoteKey {
  MemoryKind kind = MemoryKind::kHost;
  uint64_t address = 0;        // the region's first byte in the owner's address space
  uint64_t length = 0;
  std::string transport_key;   // UCX: ucp_rkey_pack output; inproc: the region id
};
std::string EncodeRemoteKey(const RemoteKey& key);
// INVALID_ARGUMENT naming what is wrong (short, bad version, trailing bytes).
absl::StatusOr<RemoteKey> DecodeRemoteKey(absl::string_view blob);

// One transport's table of local regions. Thread-safe; Find is a short lock and a vector
// index (it is on every operation's path).
class RegionTable {
 public:
  struct Entry {
    MemoryKind kind = MemoryKind::kHost;
    uint8_t* base = nullptr;
    size_t length = 0;
  };
  // `transport` prefixes every error ("ucx", "inproc").
  explicit RegionTable(std::string transport) : transport_(std::move(transport)) {}

  // Checks and records a region; returns its id (1, 2, ...). INVALID_ARGUMENT for a null
  // or empty range, UNIMPLEMENTED for a kind other than host.
  absl::StatusOr<RegionId> Add(MemoryKind kind, void* base, size_t length);

  // Resolves `slice` for operation `op` on `peer` (errors read "<transport>: <op> node
  // <peer>: region ..."; peer 0: no node named): the address of its first byte (null for an
  // empty slice of kNoRegion). INVALID_ARGUMENT for an unknown region, OUT_OF_RANGE for a
  // range outside it. `entry` (optional) receives the region. On the path of every
  // operation: no allocation unless it fails.
  absl::StatusOr<uint8_t*> Resolve(const LocalSlice& slice, absl::string_view op, uint64_t peer = 0,
                                   Entry* entry = nullptr) const;

 private:
  const std::string transport_;
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);   // entries_[id - 1]; never shrinks
};

}  // namespace ferry::dataplane
