#include "dataplane/engine/chunk_request.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace ferry::dataplane {
namespace {

constexpr size_t kFixed = 4 + 4 + 4 + 2;

template <typename T>
void Put(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

template <typename T>
T Get(std::string_view in, size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(T));
  return v;
}

}  // namespace

std::string EncodeChunkRequest(const ChunkRequest& req) {
  std::string out;
  out.reserve(kFixed + req.ns.size() + req.key.size());
  Put<uint32_t>(&out, kChunkRequestVersion);
  Put<uint32_t>(&out, req.chunk);
  Put<uint32_t>(&out, req.chunk_size);
  Put<uint16_t>(&out, static_cast<uint16_t>(req.ns.size()));
  out += req.ns;
  out += req.key;
  return out;
}

absl::StatusOr<ChunkRequest> DecodeChunkRequest(std::string_view header) {
  if (header.size() < kFixed) {
    return absl::InvalidArgumentError(absl::StrCat("chunk request of ", header.size(), " bytes is truncated"));
  }
  if (uint32_t v = Get<uint32_t>(header, 0); v != kChunkRequestVersion) {
    return absl::InvalidArgumentError(absl::StrCat("chunk request version ", v, " is not supported"));
  }
  ChunkRequest req;
  req.chunk = Get<uint32_t>(header, 4);
  req.chunk_size = Get<uint32_t>(header, 8);
  const uint16_t ns_len = Get<uint16_t>(header, 12);
  if (kFixed + ns_len > header.size()) {
    return absl::InvalidArgumentError("chunk request namespace runs past the header");
  }
  req.ns.assign(header.substr(kFixed, ns_len));
  req.key.assign(header.substr(kFixed + ns_len));
  if (req.chunk_size == 0) {
    return absl::InvalidArgumentError("chunk request has chunk size 0");
  }
  if (absl::Status s = ValidateObjectName(req.ns, req.key); !s.ok()) return s;
  return req;
}

uint32_t FetchRequestVersion(std::string_view header) {
  return header.size() < sizeof(uint32_t) ? 0 : Get<uint32_t>(header, 0);
}

uint64_t PackRequest::bytes() const {
  uint64_t total = 0;
  for (const PackEntry& e : entries) total += e.size;
  return total;
}

std::string EncodePackRequest(const PackRequest& req) {
  std::string out;
  Put<uint32_t>(&out, kPackRequestVersion);
  Put<uint32_t>(&out, static_cast<uint32_t>(req.entries.size()));
  Put<uint16_t>(&out, static_cast<uint16_t>(req.ns.size()));
  out += req.ns;
  for (const PackEntry& e : req.entries) {
    Put<uint64_t>(&out, e.size);
    Put<uint16_t>(&out, static_cast<uint16_t>(e.key.size()));
    out += e.key;
  }
  return out;
}

absl::StatusOr<PackRequest> DecodePackRequest(std::string_view header) {
  constexpr size_t kHead = 4 + 4 + 2;
  if (header.size() < kHead) {
    return absl::InvalidArgumentError(absl::StrCat("pack request of ", header.size(), " bytes is truncated"));
  }
  if (uint32_t v = Get<uint32_t>(header, 0); v != kPackRequestVersion) {
    return absl::InvalidArgumentError(absl::StrCat("pack request version ", v, " is not supported"));
  }
  const uint32_t count = Get<uint32_t>(header, 4);
  if (count == 0 || count > kMaxPackEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("pack request names ", count, " objects; 1 to ", kMaxPackEntries, " are allowed"));
  }
  const uint16_t ns_len = Get<uint16_t>(header, 8);
  if (kHead + ns_len > header.size()) return absl::InvalidArgumentError("pack request namespace runs past the header");
  PackRequest req;
  req.ns.assign(header.substr(kHead, ns_len));
  if (absl::Status s = ValidateNamespace(req.ns); !s.ok()) return s;
  req.entries.reserve(count);
  size_t at = kHead + ns_len;
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + 10 > header.size()) {
      return absl::InvalidArgumentError(absl::StrCat("pack request entry ", i, " runs past the header"));
    }
    PackEntry e;
    e.size = Get<uint64_t>(header, at);
    const uint16_t key_len = Get<uint16_t>(header, at + 8);
    at += 10;
    if (at + key_len > header.size()) {
      return absl::InvalidArgumentError(absl::StrCat("pack request entry ", i, "'s key runs past the header"));
    }
    e.key.assign(header.substr(at, key_len));
    at += key_len;
    if (absl::Status s = ValidateKey(e.key); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("pack request entry ", i, ": ", s.message()));
    }
    if (e.size > kMaxPackBytes - total) {
      return absl::InvalidArgumentError(absl::StrCat("pack request asks for more than ", kMaxPackBytes, " bytes"));
    }
    total += e.size;
    req.entries.push_back(std::move(e));
  }
  if (at != header.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pack request has ", header.size() - at, " bytes past its last entry"));
  }
  return req;
}

}  // namespace ferry::dataplane
