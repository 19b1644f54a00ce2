#include "dataplane/ucx/ucx_log.h"

#include <ucs/debug/log_def.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "spdlog/spdlog.h"

namespace ferry::dataplane::ucx {
namespace {

bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

std::string_view Basename(std::string_view file) {
  const size_t slash = file.rfind('/');
  return slash == std::string_view::npos ? file : file.substr(slash + 1);
}

ucs_log_func_rc_t Filter(const char* file, unsigned line, const char* /*function*/,
                         ucs_log_level_t level, const ucs_log_component_config_t* /*comp*/,
                         const char* format, va_list ap) {
  if (level != UCS_LOG_LEVEL_ERROR && level != UCS_LOG_LEVEL_WARN) {
    return UCS_LOG_FUNC_RC_CONTINUE;
  }
  char buf[1024];
  va_list copy;
  va_copy(copy, ap);
  std::vsnprintf(buf, sizeof(buf), format, copy);
  va_end(copy);
  const std::string_view base = Basename(file == nullptr ? "" : file);
  if (!IsPeerGoneMessage(base, buf)) return UCS_LOG_FUNC_RC_CONTINUE;
  spdlog::debug("ucx {}:{} (peer gone; UCX logs this as an error): {}", std::string(base), line,
                buf);
  return UCS_LOG_FUNC_RC_STOP;
}

}  // namespace

bool IsPeerGoneMessage(std::string_view file, std::string_view message) {
  file = Basename(file);
  // ucs_socket_connect (sock.c): the node's port is closed, i.e. its process is gone.
  if (file == "sock.c" && Contains(message, "connect(") &&
      Contains(message, "Connection refused")) {
    return true;
  }
  // uct_tcp_ep_handle_io_err (tcp_ep.c): a reconnect to a closed port failed, and UCX
  // guesses at kernel limits.
  if (file == "tcp_ep.c" && Contains(message, "net.core.somaxconn")) return true;
  // Resets by a peer that went away, wherever UCX reports them.
  if (Contains(message, "Connection reset by peer") ||
      Contains(message, "Connection reset by remote peer")) {
    return true;
  }
  // ucp_wireup_select_lanes (select.c) after the connect above: the only transport that
  // could reach the node found it unreachable.
  if (file == "select.c" && Contains(message, "no active messages transport to") &&
      Contains(message, "Destination is unreachable")) {
    return true;
  }
  return false;
}

void InstallUcxLogFilter() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("UCX_LOG_LEVEL") != nullptr) return;
    ucs_log_push_handler(&Filter);
  });
}

}  // namespace ferry::dataplane::ucx
