// Local requests: the hot path between a client and its own ferryd, on the arena channel
// (arena_channel.h) that the client already holds open for its session.
//
// A unary gRPC call over the unix socket costs tens of microseconds of HTTP/2 framing, thread
// hand-offs and allocation on both sides; a Get of an object that is already sealed on this
// node needs none of that: ferryd looks the key up, pins it and answers where it lies. After
// the hello, the client may send request frames on the arena connection and ferryd answers
// each with one reply frame, in order:
//
//   request: LocalRequestHeader (16 bytes) + body (body_len bytes)
//   reply:   LocalReplyHeader (16 bytes) + body (body_len bytes)
//
// in the host's byte order (both ends are on one host). A body is a serialized protobuf
// message chosen by the op (docs/protocol.md "Local requests"). A reply is kOk (its body is
// the answer) or kFallback: this path cannot answer (the object is not sealed here yet, the
// name is invalid, anything that needs waiting or the coordinator), so the client makes the
// ordinary RPC, which does everything and reports every error. The fast path therefore never
// changes what a call returns, only how long it takes. A frame that breaks this format (bad
// magic, unknown op, body over kMaxLocalBody) is a protocol error: ferryd logs it and closes
// the connection, which ends the session as a client exit would.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace ferry::shm {

inline constexpr uint32_t kLocalRequestMagic = 0x31515246;   // "FRQ1"
inline constexpr uint32_t kLocalReplyMagic = 0x31505246;     // "FRP1"
inline constexpr uint32_t kMaxLocalBody = 64 * 1024;

enum class LocalOp : uint16_t {
  kGet = 1,       // body: proto::GetRequest; kOk body: proto::GetReply (the object is pinned)
  kRelease = 2,   // body: proto::ReleaseRequest; kOk body: empty (one pin dropped)
};

enum class LocalReplyKind : uint16_t {
  kOk = 0,
  kFallback = 1,   // body: why, for logs; the client makes the RPC instead
};

struct LocalRequestHeader {
  uint32_t magic = kLocalRequestMagic;
  uint16_t op = 0;
  uint16_t reserved = 0;
  uint32_t id = 0;   // echoed in the reply
  uint32_t body_len = 0;
};
static_assert(sizeof(LocalRequestHeader) == 16);

struct LocalReplyHeader {
  uint32_t magic = kLocalReplyMagic;
  uint16_t kind = 0;
  uint16_t reserved = 0;
  uint32_t id = 0;
  uint32_t body_len = 0;
};
static_assert(sizeof(LocalReplyHeader) == 16);

struct LocalRequest {
  LocalOp op = LocalOp::kGet;
  uint32_t id = 0;
  std::string body;
};

struct LocalReply {
  LocalReplyKind kind = LocalReplyKind::kFallback;
  std::string body;
};

// One frame each, header and body in one buffer (written with one send).
std::string EncodeLocalRequest(LocalOp op, uint32_t id, std::string_view body);
std::string EncodeLocalReply(LocalReplyKind kind, uint32_t id, std::string_view body);

// Takes the first complete request off the front of `buf` (bytes as they arrived, possibly
// several frames or part of one). nullopt when `buf` does not hold a whole frame yet;
// INVALID_ARGUMENT naming the fault when its first frame is malformed (bad magic, unknown op,
// a non-zero reserved field, body_len over kMaxLocalBody); `buf` is then left as it was.
struct ParsedRequest {
  absl::Status error;
  std::optional<LocalRequest> request;
};
ParsedRequest TakeLocalRequest(std::string* buf);

// Client side: sends one request on the connected arena socket `sock` and waits up to
// `timeout_ms` for its reply. UNAVAILABLE if ferryd closed the connection or did not answer
// in time, INTERNAL on a reply that breaks the format or answers another id. The caller
// serializes calls on one socket (one request in flight).
absl::Status LocalCall(int sock, LocalOp op, uint32_t id, std::string_view body, int timeout_ms,
                       LocalReply* out);

}  // namespace ferry::shm
