#include "common/grpc_options.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/host_port.h"

namespace ferry {
namespace {

// Why `address` cannot be bound, found by binding it ourselves the way gRPC does
// (SO_REUSEADDR, no SO_REUSEPORT): gRPC's BuildAndStart only says that it failed.
std::string WhyNotBindable(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) return "see the gRPC error above";
  absl::StatusOr<HostPort> hp = ParseHostPort(address, EmptyHost::kAllow);
  if (!hp.ok()) return std::string(hp.status().message());
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string port = std::to_string(hp->port);
  if (int rc = getaddrinfo(hp->host.empty() ? nullptr : hp->host.c_str(), port.c_str(), &hints, &list);
      rc != 0) {
    return absl::StrCat("cannot resolve '", hp->host, "': ", gai_strerror(rc));
  }
  std::string why = "gRPC refused it (see its error above)";
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const int rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
    const int err = errno;
    close(fd);
    if (rc != 0) {
      why = err == EADDRINUSE ? "address already in use (is another ferry-coord running?)"
                              : std::string(strerror(err));
      break;
    }
  }
  freeaddrinfo(list);
  return why;
}

}  // namespace

absl::Status CheckKeepalive(const KeepalivePolicy& p) {
  if (KeepaliveAgrees(p)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "keepalive policy disagrees: the client pings every ", p.client_time_ms, " ms",
      p.client_permit_without_calls ? " (also without calls)" : "", " but the server permits one every ",
      p.server_min_ping_interval_ms, " ms", p.server_permit_without_calls ? "" : " and none without calls"));
}

void ApplyClientKeepalive(const KeepalivePolicy& p, grpc::ChannelArguments& args) {
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(p.client_time_ms));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(p.client_timeout_ms));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, p.client_permit_without_calls ? 1 : 0);
  // Keep pinging while the connection carries no data (gRPC stops after 2 such pings by
  // default), so keepalive detects a dead peer on an idle session too. gRPC 1.51 itself
  // never sends client pings less than 1 s apart, whatever these say.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, static_cast<int>(p.client_time_ms));
}

void ApplyServerKeepalive(const KeepalivePolicy& p, grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(p.server_min_ping_interval_ms));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, p.server_permit_without_calls ? 1 : 0);
}

absl::StatusOr<StartedServer> StartServer(grpc::ServerBuilder& builder, const std::string& address) {
  StartedServer out;
  // gRPC turns SO_REUSEPORT on by default: a second server on the same port would then start
  // and the kernel would split connections between the two.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &out.port);
  out.server = builder.BuildAndStart();
  const bool is_unix = absl::StartsWith(address, "unix:");
  if (out.server == nullptr || (!is_unix && out.port == 0)) {
    if (out.server != nullptr) out.server->Shutdown();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", WhyNotBindable(address)));
  }
  if (is_unix) out.port = 0;
  return out;
}

}  // namespace ferry
