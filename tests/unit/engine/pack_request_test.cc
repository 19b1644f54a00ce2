// Tests of the pack fetch request (dataplane/engine/chunk_request.h): round trips, every
// malformed header, the bounds, and a random-bytes loop that must never crash the decoder.
#include <cstring>
#include <random>
#include <string>

#include "dataplane/engine/chunk_request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

using ::testing::HasSubstr;

PackRequest Sample() {
  PackRequest req;
  req.ns = "models";
  req.entries = {{"layer0/bias", 512}, {"layer0/norm", 0}, {std::string(256, 'k'), 65536}};
  return req;
}

TEST(PackRequestTest, RoundTrip) {
  const PackRequest req = Sample();
  const std::string wire = EncodePackRequest(req);
  EXPECT_EQ(FetchRequestVersion(wire), kPackRequestVersion);
  absl::StatusOr<PackRequest> back = DecodePackRequest(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ns, "models");
  ASSERT_EQ(back->entries.size(), 3u);
  EXPECT_EQ(back->entries[0].key, "layer0/bias");
  EXPECT_EQ(back->entries[0].size, 512u);
  EXPECT_EQ(back->entries[1].size, 0u);
  EXPECT_EQ(back->entries[2].key, std::string(256, 'k'));
  EXPECT_EQ(back->bytes(), 512u + 65536u);
}

TEST(PackRequestTest, ChunkRequestsKeepTheirVersion) {
  EXPECT_EQ(FetchRequestVersion(EncodeChunkRequest(ChunkRequest{"ns", "k", 0, kMinChunkSize})), kChunkRequestVersion);
  EXPECT_EQ(FetchRequestVersion("ab"), 0u);
  // A chunk decoder refuses a pack and the other way round.
  EXPECT_FALSE(DecodeChunkRequest(EncodePackRequest(Sample())).ok());
  EXPECT_FALSE(DecodePackRequest(EncodeChunkRequest(ChunkRequest{"ns", "k", 0, kMinChunkSize})).ok());
}

TEST(PackRequestTest, RefusesMalformedHeaders) {
  const std::string wire = EncodePackRequest(Sample());
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    absl::StatusOr<PackRequest> r = DecodePackRequest(wire.substr(0, cut));
    ASSERT_FALSE(r.ok()) << "a header cut at " << cut << " bytes decoded";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(DecodePackRequest(wire + "x").status().message(), HasSubstr("past its last entry"));

  PackRequest empty;
  empty.ns = "ns";
  EXPECT_THAT(DecodePackRequest(EncodePackRequest(empty)).status().message(), HasSubstr("names 0 objects"));

  PackRequest bad_key = Sample();
  bad_key.entries[1].key = "";
  EXPECT_THAT(DecodePackRequest(EncodePackRequest(bad_key)).status().message(), HasSubstr("entry 1"));

  PackRequest bad_ns = Sample();
  bad_ns.ns = "no spaces";
  EXPECT_FALSE(DecodePackRequest(EncodePackRequest(bad_ns)).ok());
}

TEST(PackRequestTest, RefusesPacksPastTheBounds) {
  PackRequest big;
  big.ns = "ns";
  big.entries = {{"a", kMaxPackBytes}, {"b", 1}};
  EXPECT_THAT(DecodePackRequest(EncodePackRequest(big)).status().message(), HasSubstr("more than"));
  // A size near 2^64 must not wrap the total.
  big.entries = {{"a", 16}, {"b", ~uint64_t{0} - 8}};
  EXPECT_FALSE(DecodePackRequest(EncodePackRequest(big)).ok());

  PackRequest many;
  many.ns = "ns";
  for (size_t i = 0; i <= kMaxPackEntries; ++i) many.entries.push_back({"k" + std::to_string(i), 1});
  EXPECT_THAT(DecodePackRequest(EncodePackRequest(many)).status().message(), HasSubstr("4097 objects"));
  many.entries.pop_back();
  EXPECT_TRUE(DecodePackRequest(EncodePackRequest(many)).ok());
}

TEST(PackRequestTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20261202);
  const std::string wire = EncodePackRequest(Sample());
  for (int round = 0; round < 20000; ++round) {
    std::string mutated = wire;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) mutated.resize(rng() % (mutated.size() + 1));
    absl::StatusOr<PackRequest> r = DecodePackRequest(mutated);
    if (r.ok()) {
      EXPECT_LE(r->bytes(), kMaxPackBytes);
      EXPECT_GE(r->entries.size(), 1u);
    }
  }
}

}  // namespace
}  // namespace ferry::dataplane
