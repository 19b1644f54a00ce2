// Wire format of a chunk fetch request (the Transport::Fetch header). Little-endian:
//   u32 version (1) | u32 chunk index | u32 chunk size | u16 ns length | ns | key
// The key runs to the end of the header. Decoding validates every field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::dataplane {

// Smallest chunk size a peer may ask for (bounds per-request work and chunk counts).
inline constexpr uint32_t kMinChunkSize = 4096;

// A fetch for an object the server has deleted fails with NOT_FOUND and a message that
// contains this phrase ("object ns/key was deleted on node 3"): across the wire only code and
// message travel, and the receiver's Get must end on it instead of trying another sender.
inline constexpr char kObjectDeletedPhrase[] = " was deleted on node ";

struct ChunkRequest {
  std::string ns;
  std::string key;
  uint32_t chunk = 0;
  uint32_t chunk_size = 0;
};

std::string EncodeChunkRequest(const ChunkRequest& req);
// INVALID_ARGUMENT naming the problem for a malformed header.
absl::StatusOr<ChunkRequest> DecodeChunkRequest(std::string_view header);

}  // namespace ferry::dataplane
