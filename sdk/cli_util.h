// Parsing and formatting helpers of the `ferry` command line (sdk/ferry_cli.cc). Pure
// functions, no I/O.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::cli {

// "30s", "500ms", "2m", "1h30m" (absl::ParseDuration syntax) or a bare number of seconds.
// INVALID_ARGUMENT for garbage, negative or infinite durations.
[[nodiscard]] absl::StatusOr<absl::Duration> ParseDurationArg(absl::string_view text);

// Columns padded to their widest cell, two spaces apart; one line per row, header first.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// "1.92 GiB/s"; "-" when seconds <= 0 or bytes_per_second is 0.
std::string FormatRate(double bytes, double seconds);
std::string FormatBandwidth(double bytes_per_second);
// "850 us", "12.3 ms", "1.20 s"; "-" for 0 (unmeasured).
std::string FormatLatency(double seconds);
// "0.532 s".
std::string FormatSeconds(double seconds);
// "0.532 s (1.92 GiB/s)" for a transfer of at least kRateMinBytes; only "0.532 s" below it,
// where a rate says more about fixed overheads than about throughput.
inline constexpr double kRateMinBytes = 1 << 20;
std::string FormatTransfer(double bytes, double seconds);
// "1 object", "3 objects": `singular` when n == 1, else `plural` (default `singular` + "s").
std::string Plural(uint64_t n, absl::string_view singular, absl::string_view plural = "");

// A key in full, printable ASCII kept and every other byte (and '\') as \xNN. Unlike
// PrintableKey it never shortens, so JSON output is lossless.
std::string EscapeKey(std::string_view key);

// json.dump() that never throws: invalid UTF-8 is replaced. `indent` < 0: one line.
std::string DumpJson(const nlohmann::json& value, int indent = 2);

}  // namespace ferry::cli
