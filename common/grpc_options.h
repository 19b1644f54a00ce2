// The gRPC settings every ferry channel and server shares: one keepalive policy that both
// sides apply (so a client never pings faster than its server tolerates, which gRPC answers
// with GOAWAY "too_many_pings" and a dropped session), and servers that refuse a busy port
// instead of sharing it through SO_REUSEPORT.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class ChannelArguments;
class Server;
class ServerBuilder;
}  // namespace grpc

namespace ferry {

struct KeepalivePolicy {
  // Client: ping an open connection every `client_time_ms`, drop it when a ping is not
  // answered within `client_timeout_ms`; ping even with no call in flight if allowed.
  int64_t client_time_ms;
  int64_t client_timeout_ms;
  bool client_permit_without_calls;
  // Server: pings closer together than this (with no data sent in between) count as strikes,
  // and gRPC closes the connection after two strikes; pings with no call in flight are
  // strikes unless permitted.
  int64_t server_min_ping_interval_ms;
  bool server_permit_without_calls;
};

// ferryd -> ferry-coord: a dead coordinator (or a dead network path) shows within ~4 s. The
// server tolerates pings twice as often as the client sends them, so scheduling jitter never
// makes a strike.
inline constexpr KeepalivePolicy kKeepalive{
    .client_time_ms = 2000,
    .client_timeout_ms = 2000,
    .client_permit_without_calls = false,
    .server_min_ping_interval_ms = 1000,
    .server_permit_without_calls = true,
};

constexpr bool KeepaliveAgrees(const KeepalivePolicy& p) {
  return p.client_time_ms > 0 && p.client_timeout_ms > 0 && p.server_min_ping_interval_ms >= 0 &&
         p.client_time_ms >= p.server_min_ping_interval_ms &&
         (!p.client_permit_without_calls || p.server_permit_without_calls);
}
static_assert(KeepaliveAgrees(kKeepalive),
              "ferry's gRPC clients would ping faster than its servers permit");

// INVALID_ARGUMENT naming the mismatch unless KeepaliveAgrees(policy).
[[nodiscard]] absl::Status CheckKeepalive(const KeepalivePolicy& policy);

// The client half of `policy` on a channel's arguments.
void ApplyClientKeepalive(const KeepalivePolicy& policy, grpc::ChannelArguments& args);
// The server half of `policy` on a server under construction.
void ApplyServerKeepalive(const KeepalivePolicy& policy, grpc::ServerBuilder& builder);

struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the port bound (0 for a unix socket)
};

// Adds `address` (a gRPC listening address: "host:port" or "unix:PATH") to `builder` with
// SO_REUSEPORT off, and starts it. Fails, naming the address, when it cannot be bound;
// "address already in use" when another process listens there.
[[nodiscard]] absl::StatusOr<StartedServer> StartServer(grpc::ServerBuilder& builder,
                                                        const std::string& address);

}  // namespace ferry
