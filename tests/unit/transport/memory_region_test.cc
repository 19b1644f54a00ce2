// Region bounds checks, the remote key blob and the region table (memory_region.h).
#include "dataplane/transport/memory_region.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(CheckRange, AcceptsEveryRangeInsideAndRefusesEveryRangeOutside) {
  EXPECT_TRUE(CheckRange("t", 100, 0, 100).ok());
  EXPECT_TRUE(CheckRange("t", 100, 100, 0).ok());   // empty at the end
  EXPECT_TRUE(CheckRange("t", 100, 40, 60).ok());
  EXPECT_TRUE(CheckRange("t", 0, 0, 0).ok());
  EXPECT_EQ(CheckRange("t", 100, 0, 101).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckRange("t", 100, 41, 60).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckRange("t", 100, 101, 0).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckRange("t", kMax, kMax, 1).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(CheckRange("t", kMax, kMax, 0).ok());
}

TEST(CheckRange, OffsetPlusLengthThatWrapsIsRefused) {
  // offset + length wraps to 5, which a naive `offset + length <= size` would accept.
  EXPECT_EQ(CheckRange("t", 100, kMax - 10, 16).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckRange("t", 100, 16, kMax - 10).code(), absl::StatusCode::kOutOfRange);
  absl::Status st = CheckRange("fetch from node 2: region 1", 100, kMax, kMax);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("fetch from node 2: region 1"), std::string::npos) << st;
  EXPECT_NE(st.message().find("100 bytes"), std::string::npos) << st;
}

TEST(MemoryKind, OnlyHostIsSupported) {
  EXPECT_TRUE(CheckSupportedKind(MemoryKind::kHost, "x").ok());
  absl::Status st = CheckSupportedKind(MemoryKind::kCudaDevice, "ucx: RegisterMemory");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("cuda-device"), std::string::npos) << st;
  EXPECT_EQ(CheckSupportedKind(static_cast<MemoryKind>(9), "x").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(MemoryKindName(static_cast<MemoryKind>(9)), "kind 9");
}

TEST(RemoteKey, RoundTripsAndRefusesMalformedBlobs) {
  RemoteKey key{MemoryKind::kHost, 0x1122334455667788ull, 4096, std::string("rk\0ey", 5)};
  const std::string blob = EncodeRemoteKey(key);
  absl::StatusOr<RemoteKey> back = DecodeRemoteKey(blob);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, key.kind);
  EXPECT_EQ(back->address, key.address);
  EXPECT_EQ(back->length, key.length);
  EXPECT_EQ(back->transport_key, key.transport_key);
  for (size_t n = 0; n < blob.size(); ++n) {
    EXPECT_EQ(DecodeRemoteKey(blob.substr(0, n)).status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
  EXPECT_EQ(DecodeRemoteKey(blob + "x").status().code(), absl::StatusCode::kInvalidArgument);
  std::string wrong_version = blob;
  wrong_version[0] = 7;
  EXPECT_EQ(DecodeRemoteKey(wrong_version).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegionTable, ResolvesSlicesInsideAndRefusesTheRest) {
  std::vector<uint8_t> a(1000), b(10);
  RegionTable table("test");
  absl::StatusOr<RegionId> ra = table.Add(MemoryKind::kHost, a.data(), a.size());
  absl::StatusOr<RegionId> rb = table.Add(MemoryKind::kHost, b.data(), b.size());
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_NE(*ra, kNoRegion);
  EXPECT_NE(*ra, *rb);
  absl::StatusOr<uint8_t*> p = table.Resolve(LocalSlice{*ra, 10, 990}, "op");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, a.data() + 10);
  RegionTable::Entry entry;
  ASSERT_TRUE(table.Resolve(LocalSlice{*rb, 0, 10}, "op", 0, &entry).ok());
  EXPECT_EQ(entry.base, b.data());
  EXPECT_EQ(entry.length, 10u);
  EXPECT_EQ(table.Resolve(LocalSlice{*rb, 0, 11}, "op").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(table.Resolve(LocalSlice{*ra, kMax, 2}, "op").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(table.Resolve(LocalSlice{*rb + 1, 0, 1}, "op").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.Resolve(LocalSlice{kNoRegion, 0, 1}, "op").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<uint8_t*> empty = table.Resolve(LocalSlice{}, "op");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, nullptr);
  absl::Status unknown = table.Resolve(LocalSlice{42, 0, 1}, "fetch from", 3).status();
  EXPECT_NE(unknown.message().find("test: fetch from node 3: region 42"), std::string::npos) << unknown;
}

TEST(RegionTable, AddRefusesEmptyRangesAndOtherKinds) {
  std::vector<uint8_t> a(8);
  RegionTable table("test");
  EXPECT_EQ(table.Add(MemoryKind::kHost, nullptr, 8).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.Add(MemoryKind::kHost, a.data(), 0).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status cuda = table.Add(MemoryKind::kCudaDevice, a.data(), a.size()).status();
  EXPECT_EQ(cuda.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(cuda.message().find("cuda-device"), std::string::npos) << cuda;
}

}  // namespace
}  // namespace ferry::dataplane
