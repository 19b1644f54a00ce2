// StoredMetaFromProto (dataplane/sidecar/sidecar_service.h): the check of a client's
// CreateRequest.meta before the object is allocated.
#include <gtest/gtest.h>

#include "dataplane/sidecar/sidecar_service.h"

namespace ferry::dataplane {
namespace {

proto::ObjectMeta Meta(uint64_t size, proto::DType dtype, uint64_t count) {
  proto::ObjectMeta m;
  m.set_size(size);
  m.set_dtype(dtype);
  m.set_count(count);
  return m;
}

TEST(StoredMetaFromProto, DerivesTheCountFromTheSize) {
  absl::StatusOr<StoredMeta> m = StoredMetaFromProto(Meta(4096, proto::F32, 0));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->size, 4096u);
  EXPECT_EQ(m->dtype, static_cast<uint32_t>(proto::F32));
  EXPECT_EQ(m->count, 1024u);
  EXPECT_TRUE(StoredMetaFromProto(Meta(4096, proto::F32, 1024)).ok());
}

TEST(StoredMetaFromProto, RefusesAMismatchedCountSizeOrDtype) {
  EXPECT_FALSE(StoredMetaFromProto(Meta(4096, proto::F32, 1000)).ok());
  EXPECT_FALSE(StoredMetaFromProto(Meta(4095, proto::F32, 0)).ok());
  EXPECT_FALSE(StoredMetaFromProto(Meta(8, static_cast<proto::DType>(99), 0)).ok());
}

// count x element size used to be compared after a 64-bit multiplication, which wraps: an
// empty object could claim 2^62 f32 elements (2^62 x 4 = 2^64 = 0).
TEST(StoredMetaFromProto, ACountWhoseByteSizeWrapsIsRefused) {
  absl::StatusOr<StoredMeta> m = StoredMetaFromProto(Meta(0, proto::F32, uint64_t{1} << 62));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << "accepted count " << m->count;
  EXPECT_FALSE(StoredMetaFromProto(Meta(8, proto::F64, (uint64_t{1} << 61) + 1)).ok());
}

}  // namespace
}  // namespace ferry::dataplane
