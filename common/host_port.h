// Parsing of "host:port" addresses given on the command line (ferryd --coord, ferry-coord
// --listen), so both daemons accept and refuse the same spellings.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry {

struct HostPort {
  std::string host;   // a DNS name, dotted IPv4, or IPv6 without its brackets; may be empty
  uint16_t port = 0;  // 1..65535
  // "host:port", with brackets around an IPv6 host.
  std::string ToString() const;
};

enum class EmptyHost { kRefuse, kAllow };

// Parses "host:port", "[v6]:port" and (with EmptyHost::kAllow) ":port". The port must be
// 1..65535 in decimal; the host a DNS name (letters, digits, '-', '.', '_'), IPv4 or a
// bracketed IPv6 address. Nothing is resolved. INVALID_ARGUMENT naming `text` and what is
// wrong with it otherwise.
[[nodiscard]] absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                                     EmptyHost empty_host = EmptyHost::kRefuse);

}  // namespace ferry
