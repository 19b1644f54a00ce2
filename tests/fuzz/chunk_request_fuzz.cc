// Fuzzes the chunk fetch request (dataplane/engine/chunk_request.h), the header every fetch
// a peer sends carries: decode must accept exactly the well-formed headers, re-encoding an
// accepted one gives back the same bytes, and serving it out of a store never reaches
// outside the object it names.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dataplane/engine/chunk_request.h"
#include "dataplane/store/object_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using ferry::dataplane::ChunkRequest;
using ferry::dataplane::ObjectStore;
using ferry::dataplane::ServeSlice;
using ferry::dataplane::StoredMeta;

constexpr uint64_t kCapacity = 1 << 20;

struct Served {
  uint64_t offset;
  uint64_t size;
};

// A store with one sealed object ("default"/"a", 40,000 bytes) and one still being
// received in 4 KiB chunks ("default"/"b", 10,000 bytes, chunk 0 landed).
struct Fixture {
  ObjectStore store{kCapacity};
  Served a{}, b{};
  Fixture() {
    auto off = store.Create("default", "a", StoredMeta{40000, 0, 40000}, 1);
    FUZZ_CHECK(off.ok() && store.Seal("default", "a", 1).ok());
    a = {*off, 40000};
    ResetPartial();
  }
  void ResetPartial() {
    auto off_b = store.CreateReceiving("default", "b", StoredMeta{10000, 0, 10000}, 4096);
    FUZZ_CHECK(off_b.ok());
    store.MarkChunk("default", "b", 0);
    b = {*off_b, 10000};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ChunkRequest> req = ferry::dataplane::DecodeChunkRequest(in);
  if (!req.ok()) {
    FUZZ_CHECK(req.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!req.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(req->chunk_size > 0);
  const std::string again = ferry::dataplane::EncodeChunkRequest(*req);
  FUZZ_CHECK(again == in);

  const Served* obj = nullptr;
  if (req->ns == "default" && req->key == "a") obj = &fixture->a;
  if (req->ns == "default" && req->key == "b") obj = &fixture->b;
  bool answered = false;
  fixture->store.ServeChunk(req->ns, req->key, req->chunk_size, req->chunk,
                            [&](absl::StatusOr<ServeSlice> slice) {
                              answered = true;
                              if (!slice.ok()) return;
                              FUZZ_CHECK(obj != nullptr);
                              FUZZ_CHECK(slice->len > 0 && slice->len <= req->chunk_size);
                              FUZZ_CHECK(slice->offset >= obj->offset);
                              FUZZ_CHECK(slice->offset + slice->len <= obj->offset + obj->size);
                              fixture->store.UnpinServe(*slice);
                            });
  if (!answered) {
    // Only a chunk of the partial copy that has not landed yet waits. Drop the copy: the
    // waiter must be answered (ABORTED) now, while what it refers to is still alive.
    FUZZ_CHECK(obj == &fixture->b);
    fixture->store.AbortReceiving("default", "b", absl::AbortedError("fuzz input done"));
    FUZZ_CHECK(answered);
    fixture->ResetPartial();
  }
  return 0;
}
