#include "core/names.h"

#include <cctype>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ferry {

absl::Status ValidateKey(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("object key is empty");
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("object key is ", key.size(),
                                                   " bytes; the limit is ", kMaxKeyBytes));
  }
  return absl::OkStatus();
}

namespace {

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

// `what` is "namespace" or "node name".
absl::Status ValidateName(absl::string_view what, absl::string_view name, size_t limit) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (name.size() > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", name.size(), " bytes; the limit is ", limit));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " '", PrintableKey(name),
                                                     "' has a character outside [A-Za-z0-9_.-]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateNamespace(absl::string_view ns) {
  return ValidateName("namespace", ns, kMaxNamespaceBytes);
}

absl::Status ValidateNodeName(absl::string_view name) {
  return ValidateName("node name", name, kMaxNodeNameBytes);
}

absl::Status ValidateObjectName(absl::string_view ns, absl::string_view key) {
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return s;
  return ValidateKey(key);
}

std::string PrintableKey(absl::string_view key) {
  constexpr size_t kShown = 80;
  std::string out;
  for (size_t i = 0; i < key.size() && i < kShown; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  if (key.size() > kShown) absl::StrAppend(&out, "...(", key.size(), " bytes)");
  return out;
}

std::string PrintableName(absl::string_view ns, absl::string_view key) {
  return absl::StrCat(PrintableKey(ns), "/", PrintableKey(key));
}

absl::Status ParseSize(absl::string_view text, uint64_t* out) {
  std::string t(absl::StripAsciiWhitespace(text));
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  std::string num = t.substr(0, i);
  std::string unit = absl::AsciiStrToLower(t.substr(i));
  double value = 0;
  if (num.empty() || !absl::SimpleAtod(num, &value) || value < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot parse size '", text, "'"));
  }
  double mult = 1;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kib" || unit == "kb") {
    mult = 1024.0;
  } else if (unit == "m" || unit == "mib" || unit == "mb") {
    mult = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gib" || unit == "gb") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "t" || unit == "tib" || unit == "tb") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown size unit in '", text, "'"));
  }
  double bytes = value * mult;
  if (bytes > 9.0e18) return absl::InvalidArgumentError(absl::StrCat("size '", text, "' is too large"));
  *out = static_cast<uint64_t>(bytes);
  return absl::OkStatus();
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f B", bytes) : absl::StrFormat("%.2f %s", bytes, units[u]);
}

}  // namespace ferry
