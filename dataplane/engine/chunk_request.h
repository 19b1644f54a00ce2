// Wire formats of the fetch requests a ChunkServer answers (the Transport::Fetch header).
// Little-endian; the first u32 is the version, which names the kind:
//   1, a chunk:  u32 version | u32 chunk index | u32 chunk size | u16 ns length | ns | key
//                (the key runs to the end of the header); the reply is that chunk's bytes.
//   2, a pack:   u32 version | u32 count | u16 ns length | ns | count x (u64 size | u16 key
//                length | key); the reply is the named objects' bytes back to back, each
//                once it is complete on the server (docs/protocol.md "Pack fetch").
// Decoding validates every field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::dataplane {

// Smallest chunk size a peer may ask for of an object of more than kMaxSmallChunks chunks
// (bounds the number of requests an object takes); the store checks it when it serves, where
// the object's size is known (ObjectStore::ServeChunk). Smaller chunks serve small objects and
// a static group's rings over small blocks (one chunk per rank's block).
inline constexpr uint32_t kMinChunkSize = 4096;
inline constexpr uint32_t kMaxSmallChunks = 4096;

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

inline constexpr uint32_t kChunkRequestVersion = 1;
inline constexpr uint32_t kPackRequestVersion = 2;
// Bounds of one pack (the server gathers it in one buffer of at most kMaxPackBytes).
inline constexpr size_t kMaxPackEntries = 4096;
inline constexpr uint64_t kMaxPackBytes = 4ull << 20;

// The header's version (its first u32), 0 if it is shorter than that.
uint32_t FetchRequestVersion(std::string_view header);

struct PackEntry {
  std::string key;
  uint64_t size = 0;   // the object's size, as the requester knows it (checked by the server)
};
struct PackRequest {
  std::string ns;
  std::vector<PackEntry> entries;
  uint64_t bytes() const;
};

std::string EncodeChunkRequest(const ChunkRequest& req);
// INVALID_ARGUMENT naming the problem for a malformed header.
absl::StatusOr<ChunkRequest> DecodeChunkRequest(std::string_view header);
std::string EncodePackRequest(const PackRequest& req);
// INVALID_ARGUMENT naming the problem for a malformed header, no entries, more than
// kMaxPackEntries, a total past kMaxPackBytes or an invalid name.
absl::StatusOr<PackRequest> DecodePackRequest(std::string_view header);

}  // namespace ferry::dataplane
