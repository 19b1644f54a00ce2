// The arena channel: how a local client gets ferryd's arena and a session.
//
// ferryd listens on a unix stream socket "<socket>.arena". A client connects; ferryd sends
// one ArenaHello (below, little-endian, 40 bytes) with the arena's memfd attached as
// SCM_RIGHTS. The connection then stays open for the client's lifetime: when it closes
// (the client exits or crashes), ferryd ends the session, reclaiming the objects the client
// created but did not seal and dropping its pins.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::shm {

inline constexpr uint32_t kArenaMagic = 0x59525246;   // "FRRY"
inline constexpr uint32_t kArenaProtocolVersion = 1;

struct ArenaHello {
  uint32_t magic = kArenaMagic;
  uint32_t version = kArenaProtocolVersion;
  uint64_t session = 0;
  uint64_t arena_size = 0;
  uint64_t node_id = 0;
  uint64_t reserved = 0;
};
static_assert(sizeof(ArenaHello) == 40);

inline std::string ArenaSocketPath(const std::string& socket_path) { return socket_path + ".arena"; }

// Sends `hello` and `fd` over the connected unix socket `sock`.
[[nodiscard]] absl::Status SendArenaHello(int sock, const ArenaHello& hello, int fd);

struct ReceivedArena {
  ArenaHello hello;
  int fd = -1;      // the arena memfd; caller owns it
  int conn = -1;    // the open channel; caller owns it (closing it ends the session)
};
// Connects to "<socket_path>.arena" and receives the hello and fd. UNAVAILABLE if nothing
// listens there; INTERNAL on a malformed hello. Waits at most `timeout_ms`.
absl::StatusOr<ReceivedArena> ReceiveArena(const std::string& socket_path, int timeout_ms);

// The receiving half of ReceiveArena on an already connected socket `sock`, which it does
// not close (on success it is returned as `conn`). `peer` names the server in errors.
// Accepts exactly one 40-byte hello of this protocol version carrying exactly one fd that
// is a regular file (memfd) of at least hello.arena_size (> 0) bytes; UNAVAILABLE if
// nothing arrives within `timeout_ms`, INTERNAL otherwise. On failure every fd that arrived
// is closed.
absl::StatusOr<ReceivedArena> ReceiveArenaHello(int sock, const std::string& peer, int timeout_ms);

}  // namespace ferry::shm
