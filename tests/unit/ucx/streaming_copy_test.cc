// StreamingCopy must equal memcpy for every alignment of source and destination and every
// length around its 64-byte blocks, and never write outside [dst, dst + n).
#include "dataplane/ucx/streaming_copy.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace ferry::dataplane::ucx {
namespace {

TEST(StreamingCopy, MatchesMemcpyAtEveryAlignment) {
  constexpr size_t kGuard = 64;
  std::vector<uint8_t> src(4096 + 128), dst(4096 + 128 + 2 * kGuard);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
  for (size_t src_off = 0; src_off < 16; ++src_off) {
    for (size_t dst_off = 0; dst_off < 64; dst_off += 3) {
      for (size_t n : {0, 1, 15, 16, 63, 64, 127, 128, 129, 200, 1000, 4096}) {
        std::memset(dst.data(), 0xEE, dst.size());
        uint8_t* d = dst.data() + kGuard + dst_off;
        StreamingCopy(d, src.data() + src_off, n);
        ASSERT_EQ(std::memcmp(d, src.data() + src_off, n), 0)
            << "src+" << src_off << " dst+" << dst_off << " n=" << n;
        for (uint8_t* p = dst.data(); p < d; ++p) ASSERT_EQ(*p, 0xEE) << "wrote before dst";
        for (uint8_t* p = d + n; p < dst.data() + dst.size(); ++p) ASSERT_EQ(*p, 0xEE) << "wrote past dst+n";
      }
    }
  }
}

TEST(StreamingCopy, LargeCopy) {
  std::vector<uint8_t> src(8 << 20), dst((8 << 20) + 1, 0);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i ^ (i >> 9));
  StreamingCopy(dst.data() + 1, src.data(), src.size());
  EXPECT_EQ(std::memcmp(dst.data() + 1, src.data(), src.size()), 0);
  EXPECT_EQ(dst[0], 0);
}

}  // namespace
}  // namespace ferry::dataplane::ucx
