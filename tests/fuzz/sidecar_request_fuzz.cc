// Fuzzes what ferryd's local service (dataplane/sidecar/sidecar_service.*) checks of a
// client's request before it reaches the Node: each input is one Sidecar request proto
// (first byte selects which), parsed and put through the handler's own validation (object
// name, namespace, and for Create the proto -> store metadata conversion, whose result then
// goes to a real ObjectStore as Node::CreateObject would pass it).
// Not covered here (needs a running Node with a coordinator): the session check, Node::Get /
// Seal / Delete / Broadcast and the node-name resolution of SidecarBroadcastRequest.
#include <cstdint>
#include <string_view>

#include "core/names.h"
#include "google/protobuf/stubs/logging.h"
#include "dataplane/sidecar/sidecar_service.h"
#include "dataplane/store/object_store.h"
#include "ferry/object.h"
#include "tests/fuzz/fuzz_util.h"

namespace dp = ferry::dataplane;
namespace proto = ferry::proto;

namespace {

constexpr uint64_t kCapacity = 1 << 20;

template <typename Req>
bool Parse(std::string_view bytes, Req* req) {
  return req->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

bool RefOk(const proto::ObjectRef& ref) {
  const absl::Status s = ferry::ValidateObjectName(ref.ns(), ref.key());
  FUZZ_CHECK(s.ok() || (s.code() == absl::StatusCode::kInvalidArgument && !s.message().empty()));
  (void)ferry::PrintableName(ref.ns(), ref.key());   // every error message prints the name
  return s.ok();
}

void Create(const proto::CreateRequest& req) {
  static dp::ObjectStore* store = new dp::ObjectStore(kCapacity);
  const bool ref_ok = RefOk(req.ref());
  absl::StatusOr<dp::StoredMeta> meta = dp::StoredMetaFromProto(req.meta());
  if (!meta.ok()) {
    FUZZ_CHECK(meta.status().code() == absl::StatusCode::kInvalidArgument && !meta.status().message().empty());
    return;
  }
  // The conversion keeps size, and count x element size is exactly the size (no wrap).
  const size_t elem = ferry::DTypeSize(static_cast<ferry::DType>(meta->dtype));
  FUZZ_CHECK(elem > 0 && meta->size == req.meta().size() && meta->dtype == static_cast<uint32_t>(req.meta().dtype()));
  FUZZ_CHECK(static_cast<unsigned __int128>(meta->count) * elem == meta->size);
  if (!ref_ok) return;
  absl::StatusOr<uint64_t> offset = store->Create(req.ref().ns(), req.ref().key(), *meta, /*session=*/1);
  if (!offset.ok()) {
    FUZZ_CHECK(!offset.status().message().empty());
    return;
  }
  FUZZ_CHECK(*offset <= kCapacity && meta->size <= kCapacity - *offset);
  FUZZ_CHECK(store->Abort(req.ref().ns(), req.ref().key(), 1).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);   // no log line per invalid UTF-8 string
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      proto::CreateRequest r;
      if (Parse(bytes, &r)) Create(r);
      break;
    }
    case 1: {
      proto::SealRequest r;
      if (Parse(bytes, &r)) RefOk(r.ref());
      break;
    }
    case 2: {
      proto::AbortRequest r;
      if (Parse(bytes, &r)) RefOk(r.ref());
      break;
    }
    case 3: {
      proto::GetRequest r;
      if (Parse(bytes, &r)) RefOk(r.ref());
      break;
    }
    case 4: {
      proto::ReleaseRequest r;
      if (Parse(bytes, &r)) RefOk(r.ref());
      break;
    }
    case 5: {
      proto::DeleteObjectRequest r;
      if (Parse(bytes, &r)) RefOk(r.ref());
      break;
    }
    case 6: {
      proto::ListObjectsRequest r;
      if (Parse(bytes, &r)) {
        const std::string ns = r.ns().empty() ? std::string(ferry::kDefaultNamespace) : r.ns();
        (void)ferry::ValidateNamespace(ns);
      }
      break;
    }
    case 7: {
      proto::SidecarBroadcastRequest r;
      if (Parse(bytes, &r)) RefOk(r.ref());
      break;
    }
  }
  return 0;
}
