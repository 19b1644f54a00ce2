// Validation and printing of object names (namespace + key) and other user input.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace ferry {

inline constexpr size_t kMaxKeyBytes = 256;
inline constexpr size_t kMaxNamespaceBytes = 64;
inline constexpr absl::string_view kDefaultNamespace = "default";
// A node's name (ferryd --name, Hello.node.name): the coordinator refuses longer ones.
inline constexpr size_t kMaxNodeNameBytes = 128;

// OK if `key` is 1..256 bytes; INVALID_ARGUMENT naming the problem otherwise.
[[nodiscard]] absl::Status ValidateKey(absl::string_view key);
// OK if `ns` is 1..64 characters from [A-Za-z0-9_.-].
[[nodiscard]] absl::Status ValidateNamespace(absl::string_view ns);
// Both of the above.
[[nodiscard]] absl::Status ValidateObjectName(absl::string_view ns, absl::string_view key);
// OK if `name` is 1..128 characters from [A-Za-z0-9_.-] (a host name fits; ',' would break
// `ferry bcast --nodes a,b`, and '%' or spaces the logs).
[[nodiscard]] absl::Status ValidateNodeName(absl::string_view name);

// Printable form of a key for logs and error messages: printable ASCII is kept, other bytes
// are escaped as \xNN, and long keys are shortened with "...".
std::string PrintableKey(absl::string_view key);
// "ns/key" in printable form.
std::string PrintableName(absl::string_view ns, absl::string_view key);

// Parses sizes like "64MiB", "1g", "4096"; INVALID_ARGUMENT on garbage or overflow.
[[nodiscard]] absl::Status ParseSize(absl::string_view text, uint64_t* out);
// "1.50 GiB" style.
std::string HumanBytes(double bytes);

}  // namespace ferry
