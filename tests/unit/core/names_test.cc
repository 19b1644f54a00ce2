// Tests of core/names.h: key / namespace validation, printable keys, size parsing.
#include "core/names.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ValidateKeyTest, EmptyIsRejectedAndSaysSo) {
  absl::Status s = ValidateKey("");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("empty"));
}

TEST(ValidateKeyTest, LengthLimitIs256Bytes) {
  EXPECT_TRUE(ValidateKey("a").ok());
  EXPECT_TRUE(ValidateKey(std::string(kMaxKeyBytes, 'k')).ok());
  EXPECT_TRUE(ValidateKey(std::string(256, 'k')).ok());
  absl::Status s = ValidateKey(std::string(257, 'k'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("257"));
  EXPECT_THAT(s.message(), HasSubstr("256"));
  EXPECT_EQ(ValidateKey(std::string(100000, 'k')).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateKeyTest, BinaryKeysAreAllowed) {
  std::string key;
  for (int c = 0; c < 256; ++c) key.push_back(static_cast<char>(c));   // includes NUL, 0xff
  EXPECT_TRUE(ValidateKey(key).ok());
  EXPECT_TRUE(ValidateKey(std::string(1, '\0')).ok());
  EXPECT_TRUE(ValidateKey("a/b/c with spaces\n").ok());
}

TEST(ValidateNamespaceTest, GoodNamespaces) {
  EXPECT_TRUE(ValidateNamespace("default").ok());
  EXPECT_TRUE(ValidateNamespace("A-z_0.9").ok());
  EXPECT_TRUE(ValidateNamespace(std::string(kMaxNamespaceBytes, 'n')).ok());
  EXPECT_TRUE(ValidateNamespace(std::string(kDefaultNamespace)).ok());
}

TEST(ValidateNamespaceTest, EmptyAndTooLong) {
  absl::Status empty = ValidateNamespace("");
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.message(), HasSubstr("empty"));
  absl::Status too_long = ValidateNamespace(std::string(65, 'n'));
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.message(), HasSubstr("65"));
  EXPECT_THAT(too_long.message(), HasSubstr("64"));
}

TEST(ValidateNamespaceTest, BadCharactersAreNamed) {
  const std::string bads[] = {"a/b", "a b", "ns!", "\xc3\xbc", std::string("a\0b", 3), "a\\b",
                             "tab\t", "colon:"};
  for (const std::string& bad : bads) {
    absl::Status s = ValidateNamespace(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << PrintableKey(bad);
    EXPECT_THAT(s.message(), HasSubstr("A-Za-z0-9_.-")) << PrintableKey(bad);
    EXPECT_THAT(s.message(), HasSubstr(PrintableKey(bad)));
  }
}

TEST(ValidateNodeNameTest, HostNamesUpTo128CharactersPass) {
  EXPECT_TRUE(ValidateNodeName("gpu-node-07.cluster_a").ok());
  EXPECT_TRUE(ValidateNodeName(std::string(kMaxNodeNameBytes, 'n')).ok());
  EXPECT_EQ(kMaxNodeNameBytes, 128u);  // the coordinator's limit on Hello.node.name
}

TEST(ValidateNodeNameTest, EmptyLongAndBadCharactersAreRefused) {
  EXPECT_THAT(ValidateNodeName("").message(), HasSubstr("empty"));
  absl::Status too_long = ValidateNodeName(std::string(129, 'n'));
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.message(), HasSubstr("129"));
  EXPECT_THAT(too_long.message(), HasSubstr("128"));
  for (const char* bad : {"a,b", "a b", "50%", "n/1", "tab\t", "{x}"}) {
    absl::Status s = ValidateNodeName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("node name")) << bad;
  }
}

TEST(ValidateObjectNameTest, ChecksBoth) {
  EXPECT_TRUE(ValidateObjectName("ns", "key").ok());
  EXPECT_THAT(ValidateObjectName("", "key").message(), HasSubstr("namespace"));
  EXPECT_THAT(ValidateObjectName("ns", "").message(), HasSubstr("key"));
  EXPECT_EQ(ValidateObjectName("bad ns", std::string(300, 'k')).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PrintableKeyTest, KeepsPrintableAsciiAndEscapesTheRest) {
  EXPECT_EQ(PrintableKey("plain/key-1.bin"), "plain/key-1.bin");
  EXPECT_EQ(PrintableKey(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(PrintableKey("\xff\x7f\n"), "\\xff\\x7f\\x0a");
  // A backslash is escaped too, so the output is unambiguous.
  EXPECT_EQ(PrintableKey("a\\x00"), "a\\x5cx00");
  EXPECT_EQ(PrintableKey(""), "");
}

TEST(PrintableKeyTest, LongKeysAreShortenedWithTheirLength) {
  std::string key(257, 'q');
  std::string p = PrintableKey(key);
  EXPECT_LT(p.size(), key.size());
  EXPECT_THAT(p, HasSubstr("..."));
  EXPECT_THAT(p, HasSubstr("257 bytes"));
  EXPECT_EQ(PrintableKey(std::string(80, 'q')), std::string(80, 'q'));   // at the limit: intact
}

TEST(PrintableKeyTest, PrintableNameJoinsWithSlash) {
  EXPECT_EQ(PrintableName("ns", std::string("k\x01", 2)), "ns/k\\x01");
}

uint64_t MustParse(const std::string& text) {
  uint64_t out = 0xdeadbeef;
  absl::Status s = ParseSize(text, &out);
  EXPECT_TRUE(s.ok()) << text << ": " << s;
  return out;
}

TEST(ParseSizeTest, PlainAndSuffixed) {
  EXPECT_EQ(MustParse("0"), 0u);
  EXPECT_EQ(MustParse("4096"), 4096u);
  EXPECT_EQ(MustParse("4096b"), 4096u);
  EXPECT_EQ(MustParse("64MiB"), 64ull << 20);
  EXPECT_EQ(MustParse("64mib"), 64ull << 20);
  EXPECT_EQ(MustParse("64M"), 64ull << 20);
  EXPECT_EQ(MustParse("64MB"), 64ull << 20);   // documented: binary units throughout
  EXPECT_EQ(MustParse("1k"), 1024u);
  EXPECT_EQ(MustParse("1KiB"), 1024u);
  EXPECT_EQ(MustParse("1g"), 1ull << 30);
  EXPECT_EQ(MustParse("1.5g"), 3ull << 29);
  EXPECT_EQ(MustParse("2T"), 2ull << 40);
  EXPECT_EQ(MustParse("  8KiB\t"), 8192u);   // surrounding whitespace is ignored
}

TEST(ParseSizeTest, GarbageIsRejectedAndQuoted) {
  for (const char* bad : {"", " ", "abc", "MiB", "-1", "-1k", "1.2.3", "12 parsecs", "1e3", "1kk",
                          "0x10", "1,000", "nan", "inf"}) {
    uint64_t out = 77;
    absl::Status s = ParseSize(bad, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_THAT(s.message(), HasSubstr(std::string("'") + bad + "'")) << bad;
    EXPECT_EQ(out, 77u) << "output written on failure for '" << bad << "'";
  }
}

TEST(ParseSizeTest, UnknownUnitSaysUnit) {
  uint64_t out = 0;
  absl::Status s = ParseSize("5 furlongs", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unit"));
}

TEST(ParseSizeTest, OverflowIsRejected) {
  uint64_t out = 0;
  for (const char* big : {"99999999999999999999", "18446744073709551616", "100000000t",
                          "17179869184g", "1e30"}) {
    absl::Status s = ParseSize(big, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << big;
  }
  absl::Status s = ParseSize("99999999999999999999", &out);
  EXPECT_THAT(s.message(), HasSubstr("too large"));
  // Large but representable sizes still work.
  EXPECT_EQ(MustParse("1024t"), 1ull << 50);
  EXPECT_EQ(MustParse("8000000000000000000"), 8000000000000000000ull);
}

TEST(HumanBytesTest, Formats) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.50 KiB");
  EXPECT_EQ(HumanBytes(1.5 * (1 << 30)), "1.50 GiB");
  EXPECT_THAT(HumanBytes(4.0 * (1ull << 50)), HasSubstr("TiB"));   // stops at TiB
  EXPECT_THAT(HumanBytes(10), Not(HasSubstr("KiB")));
}

}  // namespace
}  // namespace ferry
