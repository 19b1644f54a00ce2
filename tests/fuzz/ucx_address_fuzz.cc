// libFuzzer target for the UCX worker address validator (dataplane/ucx/ucx_address.h): any
// bytes must parse or be refused, never read out of bounds; a blob accepted must lay out
// within itself. Links ferry_ucx_address only (no UCX). Seed corpus:
// tests/fuzz/corpus/ucx_address/ (real v1/v2 addresses, written by
// ucx_address_test --gtest_filter=UcxAddress.WriteFuzzCorpus).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dataplane/ucx/ucx_address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view blob(reinterpret_cast<const char*>(data), size);
  auto layout = ferry::dataplane::ucx::ParseWorkerAddress(blob);
  if (!layout.ok()) {
    if (layout.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  for (const auto* ranges : {&layout->device_addresses, &layout->iface_addresses}) {
    for (const auto& r : *ranges) {
      if (r.offset > size || r.length > size - r.offset) std::abort();
    }
  }
  if (layout->iface_addresses.size() > ferry::dataplane::ucx::kUcxMaxResources ||
      layout->device_addresses.size() > ferry::dataplane::ucx::kUcxMaxDevices) {
    std::abort();
  }
  return 0;
}
