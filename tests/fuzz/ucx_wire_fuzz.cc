// Fuzzes the UCX transport's own framing (dataplane/ucx/ucx_wire.h), pure functions only:
// the ferry address wrapper a node registers ("FUX1" | node id | worker address) and the
// fixed headers of the fetch-request, fetch-reply and control active messages.
//
// Input: first byte selects what the rest is (0 address blob, 1 request header, 2 reply
// header, 3 control header; others taken modulo 4).
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/ucx/ucx_wire.h"
#include "tests/fuzz/fuzz_util.h"

namespace ucx = ferry::dataplane::ucx;

namespace {

template <typename H>
void RoundTrip(std::string_view bytes) {
  const std::optional<H> h = ucx::DecodeHeader<H>(bytes.data(), bytes.size());
  FUZZ_CHECK(h.has_value() == (bytes.size() == sizeof(H)));
  if (h) FUZZ_CHECK(ucx::EncodeHeader(*h) == bytes);
}

void Address(std::string_view blob) {
  const absl::StatusOr<ucx::DecodedAddress> a = ucx::DecodeAddress(blob);
  if (!a.ok()) {
    // Refused blobs are refused as bad input, never anything else.
    FUZZ_CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  // Whatever is accepted carries a worker address that passed the validator.
  FUZZ_CHECK(ucx::ValidateWorkerAddress(a->worker_address).ok());
  FUZZ_CHECK(!a->worker_address.empty());
  // The worker address is a view into the blob, never past its end.
  FUZZ_CHECK(a->worker_address.data() >= blob.data() &&
             a->worker_address.data() + a->worker_address.size() == blob.data() + blob.size());
  FUZZ_CHECK(ucx::EncodeAddress(a->node, a->worker_address) == blob);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      Address(rest);
      break;
    case 1:
      RoundTrip<ucx::RequestHeader>(rest);
      break;
    case 2: {
      RoundTrip<ucx::ReplyHeader>(rest);
      if (auto h = ucx::DecodeHeader<ucx::ReplyHeader>(rest.data(), rest.size())) {
        // A peer's error code always maps to a real non-OK absl code.
        const absl::StatusCode c = ucx::ReplyErrorCode(h->code);
        FUZZ_CHECK(c != absl::StatusCode::kOk);
        FUZZ_CHECK(static_cast<int>(c) <= static_cast<int>(absl::StatusCode::kUnauthenticated));
        FUZZ_CHECK(!absl::Status(c, "x").ok());
      }
      break;
    }
    case 3:
      RoundTrip<ucx::ControlHeader>(rest);
      break;
  }
  return 0;
}
