// Tests of common/host_port.h: the host:port spellings ferryd --coord and ferry-coord
// --listen accept and refuse.
#include "common/host_port.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;

TEST(ParseHostPortTest, AcceptsNamesIpv4AndBracketedIpv6) {
  absl::StatusOr<HostPort> a = ParseHostPort("127.0.0.1:7700");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7700);
  EXPECT_EQ(a->ToString(), "127.0.0.1:7700");
  absl::StatusOr<HostPort> b = ParseHostPort("coord-1.example_lab.org:65535");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host, "coord-1.example_lab.org");
  EXPECT_EQ(b->port, 65535);
  absl::StatusOr<HostPort> c = ParseHostPort("[::1]:1");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 1);
  EXPECT_EQ(c->ToString(), "[::1]:1");
}

TEST(ParseHostPortTest, EmptyHostOnlyWhereAllowed) {
  EXPECT_THAT(ParseHostPort(":7700").status().message(), HasSubstr("no host"));
  absl::StatusOr<HostPort> any = ParseHostPort(":7700", EmptyHost::kAllow);
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->host, "");
  EXPECT_EQ(any->port, 7700);
}

TEST(ParseHostPortTest, RefusesMissingZeroAndOutOfRangePorts) {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"127.0.0.1", "no port"},        {"127.0.0.1:", "no port"},
      {"host:0", "outside 1-65535"},   {":99999", "outside 1-65535"},
      {"host:65536", "outside 1-65535"}, {"host:0000007700", "outside 1-65535"},
      {"host:77a", "not a number"},    {"host:-1", "not a number"},
      {"host: 80", "not a number"},    {"[::1]", "no port"},
      {"[::1]7700", "no port"},        {"[::1:7700", "without ']'"},
  };
  for (const Case& c : cases) {
    absl::Status s = ParseHostPort(c.text, EmptyHost::kAllow).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(s.message(), HasSubstr(c.why)) << c.text;
    EXPECT_THAT(s.message(), HasSubstr(c.text)) << c.text;
  }
}

TEST(ParseHostPortTest, RefusesGarbageHosts) {
  for (const char* bad : {"a b:7700", "a:b:7700", "::1:7700", "[nope]:7700", "host/x:7700",
                          "-host:7700", ".:7700", "ho%st:7700", "garbage"}) {
    EXPECT_EQ(ParseHostPort(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseHostPort("::1:7700").status().message(), HasSubstr("brackets"));
}

}  // namespace
}  // namespace ferry
