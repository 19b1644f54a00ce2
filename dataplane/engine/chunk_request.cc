#include "dataplane/engine/chunk_request.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace ferry::dataplane {
namespace {

constexpr uint32_t kVersion = 1;
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
  Put<uint32_t>(&out, kVersion);
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
  if (uint32_t v = Get<uint32_t>(header, 0); v != kVersion) {
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
  if (req.chunk_size < kMinChunkSize) {
    return absl::InvalidArgumentError(absl::StrCat("chunk request has chunk size ", req.chunk_size,
                                                   "; the minimum is ", kMinChunkSize));
  }
  if (absl::Status s = ValidateObjectName(req.ns, req.key); !s.ok()) return s;
  return req;
}

}  // namespace ferry::dataplane
