#include "common/host_port.h"

#include <arpa/inet.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

absl::Status Bad(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("address '", text, "' is not host:port: ", why));
}

bool IsDnsName(absl::string_view host) {
  if (host.size() > 253) return false;
  for (char c : host) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
          c == '_')) {
      return false;
    }
  }
  return host.front() != '.' && host.front() != '-';
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, EmptyHost empty_host) {
  HostPort out;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return Bad(text, "'[' without ']'");
    out.host = std::string(text.substr(1, close - 1));
    in6_addr v6;
    if (inet_pton(AF_INET6, out.host.c_str(), &v6) != 1) {
      return Bad(text, absl::StrCat("'", out.host, "' is not an IPv6 address"));
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') return Bad(text, "no port");
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return Bad(text, "no port");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return Bad(text, "more than one ':' (write an IPv6 host in brackets: [::1]:7700)");
    }
    if (out.host.empty() && empty_host == EmptyHost::kRefuse) return Bad(text, "no host");
    if (!out.host.empty() && !IsDnsName(out.host)) {
      return Bad(text, absl::StrCat("'", out.host, "' is not a host name or IPv4 address"));
    }
  }
  if (port_text.empty()) return Bad(text, "no port");
  uint32_t port = 0;
  for (char c : port_text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return Bad(text, absl::StrCat("port '", port_text, "' is not a number"));
    }
  }
  if (port_text.size() > 5 || !absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
    return Bad(text, absl::StrCat("port ", port_text, " is outside 1-65535"));
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

}  // namespace ferry
