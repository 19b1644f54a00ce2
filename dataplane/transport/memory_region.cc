#include "dataplane/transport/memory_region.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ferry::dataplane {
namespace {

constexpr uint8_t kRemoteKeyVersion = 1;
constexpr size_t kRemoteKeyFixed = 1 + 1 + 8 + 8 + 4;

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

}  // namespace

std::string MemoryKindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kHost: return "host";
    case MemoryKind::kCudaDevice: return "cuda-device";
  }
  return absl::StrCat("kind ", static_cast<int>(kind));
}

absl::Status CheckSupportedKind(MemoryKind kind, absl::string_view what) {
  if (kind == MemoryKind::kHost) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(what, ": memory kind ", MemoryKindName(kind),
                                               " is not supported yet (only host memory)"));
}

absl::Status CheckRange(absl::string_view what, uint64_t region_length, uint64_t offset, uint64_t length) {
  // offset <= region_length first, so region_length - offset cannot wrap.
  if (offset <= region_length && length <= region_length - offset) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrCat(what, ": range [", offset, ", +", length,
                                            ") is outside the region of ", region_length, " bytes"));
}

std::string EncodeRemoteKey(const RemoteKey& key) {
  std::string out;
  out.reserve(kRemoteKeyFixed + key.transport_key.size());
  out.push_back(static_cast<char>(kRemoteKeyVersion));
  out.push_back(static_cast<char>(key.kind));
  PutU64(out, key.address);
  PutU64(out, key.length);
  PutU32(out, static_cast<uint32_t>(key.transport_key.size()));
  out.append(key.transport_key);
  return out;
}

absl::StatusOr<RemoteKey> DecodeRemoteKey(absl::string_view blob) {
  if (blob.size() < kRemoteKeyFixed) {
    return absl::InvalidArgumentError(
        absl::StrCat("remote key of ", blob.size(), " bytes is shorter than its ", kRemoteKeyFixed, "-byte header"));
  }
  if (static_cast<uint8_t>(blob[0]) != kRemoteKeyVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("remote key has version ", static_cast<int>(static_cast<uint8_t>(blob[0])), ", expected ",
                     static_cast<int>(kRemoteKeyVersion)));
  }
  RemoteKey key;
  key.kind = static_cast<MemoryKind>(static_cast<uint8_t>(blob[1]));
  key.address = GetLe(blob.data() + 2, 8);
  key.length = GetLe(blob.data() + 10, 8);
  const uint64_t n = GetLe(blob.data() + 18, 4);
  if (n != blob.size() - kRemoteKeyFixed) {
    return absl::InvalidArgumentError(absl::StrCat("remote key says its transport key has ", n, " bytes, but ",
                                                   blob.size() - kRemoteKeyFixed, " follow"));
  }
  key.transport_key = std::string(blob.substr(kRemoteKeyFixed));
  return key;
}

absl::StatusOr<RegionId> RegionTable::Add(MemoryKind kind, void* base, size_t length) {
  const std::string what = absl::StrCat(transport_, ": RegisterMemory");
  if (absl::Status s = CheckSupportedKind(kind, what); !s.ok()) return s;
  if (base == nullptr || length == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " needs a non-empty range"));
  }
  absl::MutexLock lock(&mu_);
  entries_.push_back(Entry{kind, static_cast<uint8_t*>(base), length});
  return static_cast<RegionId>(entries_.size());
}

absl::StatusOr<uint8_t*> RegionTable::Resolve(const LocalSlice& slice, absl::string_view op, uint64_t peer,
                                               Entry* entry) const {
  auto what = [&] {
    return peer == 0 ? absl::StrCat(transport_, ": ", op) : absl::StrCat(transport_, ": ", op, " node ", peer);
  };
  if (slice.region == kNoRegion) {
    if (slice.length == 0) return nullptr;   // no bytes, no memory
    return absl::InvalidArgumentError(absl::StrCat(what(), ": ", slice.length, " bytes in no registered region"));
  }
  Entry e;
  {
    absl::MutexLock lock(&mu_);
    if (slice.region > entries_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what(), ": region ", slice.region, " is not registered here"));
    }
    e = entries_[slice.region - 1];
  }
  if (slice.offset > e.length || slice.length > e.length - slice.offset) {   // overflow-safe
    return CheckRange(absl::StrCat(what(), ": region ", slice.region), e.length, slice.offset, slice.length);
  }
  if (entry != nullptr) *entry = e;
  return e.base + slice.offset;
}

}  // namespace ferry::dataplane
