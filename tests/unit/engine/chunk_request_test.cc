// Tests of dataplane/engine/chunk_request.h: round trips, every malformed header, and a
// random-bytes fuzz loop.
#include "dataplane/engine/chunk_request.h"

#include <cstring>
#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

using ::testing::HasSubstr;

constexpr size_t kFixed = 4 + 4 + 4 + 2;   // version, chunk, chunk size, ns length

TEST(ChunkRequestTest, RoundTrip) {
  ChunkRequest req{"my-ns", "some/key", 17, 1 << 20};
  std::string wire = EncodeChunkRequest(req);
  EXPECT_EQ(wire.size(), kFixed + 5 + 8);
  absl::StatusOr<ChunkRequest> back = DecodeChunkRequest(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ns, "my-ns");
  EXPECT_EQ(back->key, "some/key");
  EXPECT_EQ(back->chunk, 17u);
  EXPECT_EQ(back->chunk_size, 1u << 20);
}

TEST(ChunkRequestTest, RoundTripEdgeValues) {
  std::string binary_key;
  for (int c = 0; c < 256; ++c) binary_key.push_back(static_cast<char>(c));
  for (const ChunkRequest& req :
       {ChunkRequest{"n", "k", 0, kMinChunkSize}, ChunkRequest{std::string(64, 'n'), binary_key, UINT32_MAX, UINT32_MAX},
        ChunkRequest{"ns", std::string(1, '\0'), 5, 4096}}) {
    absl::StatusOr<ChunkRequest> back = DecodeChunkRequest(EncodeChunkRequest(req));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->ns, req.ns);
    EXPECT_EQ(back->key, req.key);
    EXPECT_EQ(back->chunk, req.chunk);
    EXPECT_EQ(back->chunk_size, req.chunk_size);
  }
}

TEST(ChunkRequestTest, IsLittleEndian) {
  std::string wire = EncodeChunkRequest({"ns", "k", 0x01020304, 0x0a0b0c0d});
  const unsigned char expected[] = {1, 0, 0, 0, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a, 2, 0};
  ASSERT_GE(wire.size(), sizeof(expected));
  EXPECT_EQ(std::memcmp(wire.data(), expected, sizeof(expected)), 0);
  EXPECT_EQ(wire.substr(kFixed), "nsk");
}

TEST(ChunkRequestTest, EveryTruncationOfTheFixedPartIsRejected) {
  std::string wire = EncodeChunkRequest({"ns", "key", 3, 4096});
  for (size_t len = 0; len < kFixed; ++len) {
    absl::StatusOr<ChunkRequest> r = DecodeChunkRequest(std::string_view(wire).substr(0, len));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << len;
    EXPECT_THAT(r.status().message(), HasSubstr("truncated")) << len;
  }
  // Truncated inside the namespace: the namespace runs past the end.
  for (size_t len = kFixed; len < kFixed + 2; ++len) {
    absl::StatusOr<ChunkRequest> r = DecodeChunkRequest(std::string_view(wire).substr(0, len));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << len;
  }
  // Truncated right after the namespace: empty key.
  absl::StatusOr<ChunkRequest> no_key = DecodeChunkRequest(std::string_view(wire).substr(0, kFixed + 2));
  EXPECT_EQ(no_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_key.status().message(), HasSubstr("empty"));
}

TEST(ChunkRequestTest, BadVersion) {
  for (uint32_t v : {0u, 2u, 0x01000000u, UINT32_MAX}) {
    std::string wire = EncodeChunkRequest({"ns", "key", 0, 4096});
    std::memcpy(wire.data(), &v, 4);
    absl::StatusOr<ChunkRequest> r = DecodeChunkRequest(wire);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("version " + std::to_string(v)));
  }
}

TEST(ChunkRequestTest, NamespaceLengthPastEnd) {
  std::string wire = EncodeChunkRequest({"ns", "key", 0, 4096});
  for (uint16_t ns_len : {uint16_t{6}, uint16_t{100}, uint16_t{0xffff}}) {
    std::memcpy(wire.data() + 12, &ns_len, 2);
    absl::StatusOr<ChunkRequest> r = DecodeChunkRequest(wire);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << ns_len;
    EXPECT_THAT(r.status().message(), HasSubstr("namespace")) << ns_len;
  }
  // ns length exactly to the end: empty key.
  uint16_t all = 5;
  std::memcpy(wire.data() + 12, &all, 2);
  EXPECT_EQ(DecodeChunkRequest(wire).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChunkRequestTest, FieldValidation) {
  absl::StatusOr<ChunkRequest> zero = DecodeChunkRequest(EncodeChunkRequest({"ns", "k", 0, 0}));
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("chunk size 0"));
  // Small chunks decode; the store refuses them for objects of many chunks (it knows the size).
  EXPECT_TRUE(DecodeChunkRequest(EncodeChunkRequest({"ns", "k", 0, kMinChunkSize - 1})).ok());

  absl::StatusOr<ChunkRequest> empty_key = DecodeChunkRequest(EncodeChunkRequest({"ns", "", 0, kMinChunkSize}));
  EXPECT_EQ(empty_key.status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<ChunkRequest> empty_ns = DecodeChunkRequest(EncodeChunkRequest({"", "k", 0, kMinChunkSize}));
  EXPECT_EQ(empty_ns.status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<ChunkRequest> long_key =
      DecodeChunkRequest(EncodeChunkRequest({"ns", std::string(257, 'k'), 0, kMinChunkSize}));
  EXPECT_EQ(long_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(long_key.status().message(), HasSubstr("257"));
  EXPECT_TRUE(DecodeChunkRequest(EncodeChunkRequest({"ns", std::string(256, 'k'), 0, kMinChunkSize})).ok());

  absl::StatusOr<ChunkRequest> bad_ns = DecodeChunkRequest(EncodeChunkRequest({"a/b", "k", 0, kMinChunkSize}));
  EXPECT_EQ(bad_ns.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ChunkRequest> long_ns =
      DecodeChunkRequest(EncodeChunkRequest({std::string(65, 'n'), "k", 0, kMinChunkSize}));
  EXPECT_EQ(long_ns.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChunkRequestFuzzTest, RandomBuffersNeverCrash) {
  std::mt19937_64 rng(20240611);
  int valid = 0;
  const std::string base = EncodeChunkRequest({"ns", "key-0", 1, 4096});
  for (int i = 0; i < 10000; ++i) {
    std::string buf;
    if (i % 2 == 0) {
      // Pure noise, often with a plausible version word.
      buf.resize(rng() % 96);
      for (char& c : buf) c = static_cast<char>(rng());
      if (buf.size() >= 4 && rng() % 2 == 0) buf[0] = 1, buf[1] = buf[2] = buf[3] = 0;
    } else {
      // A valid header with a few bytes flipped, truncated or extended.
      buf = base;
      for (int flips = 1 + rng() % 3; flips > 0; --flips) buf[rng() % buf.size()] = static_cast<char>(rng());
      if (rng() % 4 == 0) buf.resize(rng() % (buf.size() + 1));
      if (rng() % 4 == 0) buf.append(rng() % 300, static_cast<char>(rng()));
    }
    absl::StatusOr<ChunkRequest> r = DecodeChunkRequest(buf);
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << i;
      ASSERT_FALSE(r.status().message().empty());
      continue;
    }
    ++valid;
    // Whatever decodes is a well-formed request that re-encodes to the same bytes.
    ASSERT_GT(r->chunk_size, 0u);
    ASSERT_FALSE(r->ns.empty());
    ASSERT_LE(r->ns.size(), 64u);
    ASSERT_FALSE(r->key.empty());
    ASSERT_LE(r->key.size(), 256u);
    ASSERT_EQ(EncodeChunkRequest(*r), buf) << i;
  }
  EXPECT_GT(valid, 100) << "the fuzz loop should also produce valid requests";
}

}  // namespace
}  // namespace ferry::dataplane
