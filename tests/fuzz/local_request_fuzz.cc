// Fuzzes the framing of local requests on the arena connection (shm/local_channel.h), the
// bytes any local process can write to ferryd's arena thread. The input arrives in pieces
// (each piece's first byte is its length), as a stream socket may deliver it; after each piece
// every complete request is taken off the buffer. Properties: no crash; a refused frame leaves
// the buffer as it was (ferryd then closes the connection); a taken request has a known op and
// a body within the limit, and encoding it again gives exactly the bytes it was taken from.
#include <algorithm>
#include <cstdint>
#include <string>

#include "shm/local_channel.h"
#include "tests/fuzz/fuzz_util.h"

namespace shm = ferry::shm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string buf;
  size_t at = 0;
  while (at < size) {
    const size_t len = std::min<size_t>(data[at], size - at - 1);
    buf.append(reinterpret_cast<const char*>(data + at + 1), len);
    at += 1 + len;
    while (true) {
      const std::string before = buf;
      shm::ParsedRequest p = shm::TakeLocalRequest(&buf);
      if (!p.error.ok()) {
        FUZZ_CHECK(!p.request.has_value());
        FUZZ_CHECK(buf == before);
        return 0;   // ferryd closes the connection here
      }
      if (!p.request.has_value()) {
        FUZZ_CHECK(buf == before);
        break;
      }
      const shm::LocalRequest& r = *p.request;
      FUZZ_CHECK(r.op == shm::LocalOp::kGet || r.op == shm::LocalOp::kRelease);
      FUZZ_CHECK(r.body.size() <= shm::kMaxLocalBody);
      const std::string again = shm::EncodeLocalRequest(r.op, r.id, r.body);
      FUZZ_CHECK(before.size() == again.size() + buf.size());
      FUZZ_CHECK(before.compare(0, again.size(), again) == 0);
    }
  }
  return 0;
}
