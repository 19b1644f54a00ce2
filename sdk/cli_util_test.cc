// Tests of sdk/cli_util.h, the `ferry` CLI's parsing and formatting helpers. Not yet wired
// into CTest (see sdk/CMakeLists.txt); compile with sdk/cli_util.cc.
#include "sdk/cli_util.h"

#include <gtest/gtest.h>

namespace ferry::cli {
namespace {

TEST(CliUtilTest, ParsesDurations) {
  EXPECT_EQ(*ParseDurationArg("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDurationArg("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDurationArg("2m"), absl::Minutes(2));
  EXPECT_EQ(*ParseDurationArg("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationArg(" 5 "), absl::Seconds(5));
  EXPECT_EQ(*ParseDurationArg("0.5"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDurationArg("0"), absl::ZeroDuration());
}

TEST(CliUtilTest, RejectsBadDurations) {
  for (const char* bad : {"", "abc", "30 sec", "-1s", "-5", "inf", "nan", "10x"}) {
    EXPECT_EQ(ParseDurationArg(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(CliUtilTest, FormatsTables) {
  EXPECT_EQ(FormatTable({"A", "BB"}, {{"xyz", "1"}, {"q", "22"}}),
            "A    BB\n"
            "xyz  1\n"
            "q    22\n");
  EXPECT_EQ(FormatTable({"ONLY"}, {}), "ONLY\n");
}

TEST(CliUtilTest, FormatsRatesAndLatencies) {
  EXPECT_EQ(FormatRate(1024.0 * 1024 * 1024, 0.5), "2.00 GiB/s");
  EXPECT_EQ(FormatRate(100, 0), "-");
  EXPECT_EQ(FormatBandwidth(0), "-");
  EXPECT_EQ(FormatLatency(0), "-");
  EXPECT_EQ(FormatLatency(850e-6), "850 us");
  EXPECT_EQ(FormatLatency(0.0123), "12.3 ms");
  EXPECT_EQ(FormatLatency(1.2), "1.20 s");
}

TEST(CliUtilTest, TransfersBelowOneMiBShowNoRate) {
  EXPECT_EQ(FormatTransfer(17, 0.002), "0.002 s");
  EXPECT_EQ(FormatTransfer((1 << 20) - 1, 1), "1.000 s");
  EXPECT_EQ(FormatTransfer(1 << 20, 1), "1.000 s (1.00 MiB/s)");
  EXPECT_EQ(FormatTransfer(2 << 20, 0), "0.000 s");
}

TEST(CliUtilTest, PluralsCountOne) {
  EXPECT_EQ(Plural(0, "object"), "0 objects");
  EXPECT_EQ(Plural(1, "object"), "1 object");
  EXPECT_EQ(Plural(2, "node"), "2 nodes");
  EXPECT_EQ(Plural(1, "retry", "retries"), "1 retry");
  EXPECT_EQ(Plural(3, "retry", "retries"), "3 retries");
}

TEST(CliUtilTest, EscapesKeysWithoutShortening) {
  EXPECT_EQ(EscapeKey("weights/v7"), "weights/v7");
  EXPECT_EQ(EscapeKey(std::string("a\0b\\\xff", 5)), "a\\x00b\\x5c\\xff");
  EXPECT_EQ(EscapeKey(std::string(300, 'k')).size(), 300u);
}

TEST(CliUtilTest, DumpJsonNeverThrowsOnBadUtf8) {
  nlohmann::json j{{"name", std::string("bad\xff")}};
  EXPECT_NO_THROW((void)DumpJson(j, -1));
  EXPECT_NE(DumpJson(j, -1).find("bad"), std::string::npos);
}

}  // namespace
}  // namespace ferry::cli
