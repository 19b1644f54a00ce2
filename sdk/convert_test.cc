// Tests of sdk/convert.h: proto <-> public type conversion and client-side metadata checks.
// Not yet wired into CTest (see sdk/CMakeLists.txt); needs ferry_sdk and ferry_proto.
#include "sdk/convert.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace ferry::sdk {
namespace {

ObjectName Name(const std::string& key) { return ObjectName{"default", key}; }

TEST(ConvertTest, DTypeRoundTripsThroughProto) {
  for (int v = 0; v <= static_cast<int>(DType::kU8); ++v) {
    const DType dtype = static_cast<DType>(v);
    EXPECT_EQ(static_cast<int>(DTypeToProto(dtype)), v);
    absl::StatusOr<DType> back = DTypeFromProto(DTypeToProto(dtype));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, dtype);
    EXPECT_EQ(DTypeFromName(DTypeName(dtype)), dtype);
  }
  EXPECT_EQ(DTypeToProto(DType::kF32), proto::F32);
  EXPECT_EQ(DTypeToProto(DType::kBF16), proto::BF16);
}

TEST(ConvertTest, UnknownProtoDTypeIsInternal) {
  EXPECT_EQ(DTypeFromProto(8).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(DTypeFromProto(-1).status().code(), absl::StatusCode::kInternal);
}

TEST(ConvertTest, DTypeNamesAndSizes) {
  EXPECT_EQ(DTypeSize(DType::kBytes), 1u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF64), 8u);
  EXPECT_EQ(DTypeSize(static_cast<DType>(99)), 0u);
  EXPECT_STREQ(DTypeName(static_cast<DType>(99)), "?");
  EXPECT_EQ(DTypeFromName("F32"), DType::kF32);
  EXPECT_EQ(DTypeFromName("float"), std::nullopt);
  EXPECT_EQ(DTypeFromName(""), std::nullopt);
}

TEST(ConvertTest, NormalizeMetaFillsCount) {
  ObjectMeta meta;
  meta.size = 4096;
  meta.dtype = DType::kF32;
  absl::StatusOr<ObjectMeta> out = NormalizeMeta(Name("w"), meta);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->count, 1024u);
  meta.dtype = DType::kBytes;
  meta.size = 0;
  out = NormalizeMeta(Name("empty"), meta);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->count, 0u);
}

TEST(ConvertTest, NormalizeMetaRejectsPartialElementsAndWrongCount) {
  ObjectMeta meta;
  meta.size = 10;
  meta.dtype = DType::kF64;
  absl::StatusOr<ObjectMeta> out = NormalizeMeta(Name("w"), meta);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("default/w"), absl::string_view::npos) << out.status();
  meta.size = 16;
  meta.count = 3;
  EXPECT_EQ(NormalizeMeta(Name("w"), meta).status().code(), absl::StatusCode::kInvalidArgument);
  meta.count = 2;
  EXPECT_TRUE(NormalizeMeta(Name("w"), meta).ok());
  meta.dtype = static_cast<DType>(42);
  EXPECT_EQ(NormalizeMeta(Name("w"), meta).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConvertTest, ValidateNameChecksNamespaceAndKey) {
  EXPECT_TRUE(ValidateName(Name("a")).ok());
  EXPECT_EQ(ValidateName(Name("")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateName(Name(std::string(257, 'k'))).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateName(ObjectName{"bad ns", "k"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateName(Name(std::string("\0\xff", 2))).ok());  // keys are bytes
}

TEST(ConvertTest, NameAndMetaRoundTrip) {
  const ObjectName name{"tenant-1", std::string("k\0ey", 4)};
  proto::ObjectRef ref;
  NameToProto(name, &ref);
  const ObjectName back = NameFromProto(ref);
  EXPECT_EQ(back.ns, name.ns);
  EXPECT_EQ(back.key, name.key);

  ObjectMeta meta{4096, DType::kI32, 1024};
  proto::ObjectMeta pm;
  MetaToProto(meta, &pm);
  EXPECT_EQ(pm.dtype(), proto::I32);
  absl::StatusOr<ObjectMeta> m = MetaFromProto(pm);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->size, 4096u);
  EXPECT_EQ(m->dtype, DType::kI32);
  EXPECT_EQ(m->count, 1024u);
}

TEST(ConvertTest, ListedObjectWithUnknownDTypeNamesTheObject) {
  proto::ListedObject listed;
  listed.mutable_ref()->set_ns("default");
  listed.mutable_ref()->set_key("x");
  listed.mutable_meta()->set_dtype(static_cast<proto::DType>(77));
  absl::StatusOr<ObjectInfo> info = ListedFromProto(listed);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(info.status().message().find("default/x"), absl::string_view::npos);

  listed.mutable_meta()->set_dtype(proto::U8);
  listed.mutable_meta()->set_size(5);
  listed.set_complete_copies(2);
  listed.set_partial_copies(1);
  info = ListedFromProto(listed);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->meta.dtype, DType::kU8);
  EXPECT_EQ(info->complete_copies, 2u);
  EXPECT_EQ(info->partial_copies, 1u);
}

TEST(ConvertTest, StatusUsesLocalCountersAndHelloId) {
  proto::StatusReply reply;
  reply.mutable_self()->set_name("n1");
  reply.mutable_self()->set_arena_used(1);
  reply.mutable_local()->set_arena_bytes(1000);
  reply.mutable_local()->set_arena_used(300);
  reply.mutable_local()->set_objects(3);
  reply.mutable_local()->set_retries(7);
  reply.set_coordinator_connected(true);
  proto::NodeInfo* peer = reply.add_cluster();
  peer->set_node_id(9);
  peer->set_name("n2");
  peer->set_bandwidth_bps(1e9);
  (*peer->mutable_labels())["rack"] = "r1";
  const NodeStatus st = StatusFromProto(reply, 42);
  EXPECT_EQ(st.self.id, 42u);
  EXPECT_EQ(st.self.name, "n1");
  EXPECT_TRUE(st.self.alive);
  EXPECT_EQ(st.self.arena_used, 300u);
  EXPECT_EQ(st.self.arena_bytes, 1000u);
  EXPECT_EQ(st.self.objects, 3u);
  EXPECT_EQ(st.retries, 7u);
  EXPECT_TRUE(st.coordinator_connected);
  ASSERT_EQ(st.cluster.size(), 1u);
  EXPECT_EQ(st.cluster[0].id, 9u);
  EXPECT_EQ(st.cluster[0].labels.at("rack"), "r1");
  EXPECT_DOUBLE_EQ(st.cluster[0].bandwidth_bps, 1e9);
}

TEST(ConvertTest, BroadcastAndGetInfo) {
  proto::SidecarBroadcastReply reply;
  reply.set_seconds(1.5);
  auto* r = reply.add_results();
  r->set_node("n2");
  r->set_ok(false);
  r->set_error("node n2 died");
  const BroadcastResult result = BroadcastFromProto(reply);
  EXPECT_DOUBLE_EQ(result.seconds, 1.5);
  ASSERT_EQ(result.targets.size(), 1u);
  EXPECT_EQ(result.targets[0].node, "n2");
  EXPECT_FALSE(result.targets[0].ok);
  EXPECT_EQ(result.targets[0].error, "node n2 died");

  proto::GetReply get;
  get.set_pulled(true);
  get.set_source_node(5);
  get.set_pull_seconds(0.25);
  const GetInfo info = GetInfoFromProto(get);
  EXPECT_TRUE(info.pulled);
  EXPECT_EQ(info.source_node, 5u);
  EXPECT_DOUBLE_EQ(info.seconds, 0.25);
}

TEST(ConvertTest, TimeoutToMsClampsAndRoundsUp) {
  EXPECT_EQ(TimeoutToMs(absl::ZeroDuration()), 0u);
  EXPECT_EQ(TimeoutToMs(absl::Seconds(-3)), 0u);
  EXPECT_EQ(TimeoutToMs(absl::Microseconds(1)), 1u);
  EXPECT_EQ(TimeoutToMs(absl::Milliseconds(1500)), 1500u);
  EXPECT_EQ(TimeoutToMs(absl::Hours(24 * 365)), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(TimeoutToMs(absl::InfiniteDuration()), std::numeric_limits<uint32_t>::max());
}

}  // namespace
}  // namespace ferry::sdk
