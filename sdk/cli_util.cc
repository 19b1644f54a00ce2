#include "sdk/cli_util.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/names.h"

namespace ferry::cli {

absl::StatusOr<absl::Duration> ParseDurationArg(absl::string_view text) {
  const std::string t(absl::StripAsciiWhitespace(text));
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(t, &seconds) && std::isfinite(seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(t, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot parse duration '", text, "' (use e.g. 30s, 500ms, 2m)"));
  }
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration '", text, "' must be finite and >= 0"));
  }
  return d;
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&width](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      if (i > 0) line += "  ";
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size(), ' ');
    }
    absl::StrAppend(&out, line, "\n");
  };
  emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string FormatBandwidth(double bytes_per_second) {
  if (!(bytes_per_second > 0)) return "-";
  return absl::StrCat(HumanBytes(bytes_per_second), "/s");
}

std::string FormatRate(double bytes, double seconds) {
  if (!(seconds > 0)) return "-";
  return FormatBandwidth(bytes / seconds);
}

std::string FormatLatency(double seconds) {
  if (!(seconds > 0)) return "-";
  if (seconds < 1e-3) return absl::StrFormat("%.0f us", seconds * 1e6);
  if (seconds < 1) return absl::StrFormat("%.1f ms", seconds * 1e3);
  return absl::StrFormat("%.2f s", seconds);
}

std::string FormatSeconds(double seconds) { return absl::StrFormat("%.3f s", seconds); }

std::string FormatTransfer(double bytes, double seconds) {
  if (bytes < kRateMinBytes || !(seconds > 0)) return FormatSeconds(seconds);
  return absl::StrCat(FormatSeconds(seconds), " (", FormatRate(bytes, seconds), ")");
}

std::string Plural(uint64_t n, absl::string_view singular, absl::string_view plural) {
  if (n == 1) return absl::StrCat(n, " ", singular);
  return plural.empty() ? absl::StrCat(n, " ", singular, "s") : absl::StrCat(n, " ", plural);
}

std::string EscapeKey(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char ch : key) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(ch);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  return out;
}

std::string DumpJson(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ferry::cli
