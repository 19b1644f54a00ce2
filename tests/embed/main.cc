// Links libferry from a project that embeds ferry: only the public headers are reachable.
#include <cstdio>
#include <string>

#include "ferry/client.h"

int main() {
  // No ferryd listens here: Connect must fail cleanly with UNAVAILABLE.
  auto client = ferry::Client::Connect("/nonexistent/ferry-embed-smoke.sock");
  if (client.ok() || client.status().code() != absl::StatusCode::kUnavailable) {
    std::fprintf(stderr, "expected UNAVAILABLE, got %s\n", std::string(client.status().ToString()).c_str());
    return 1;
  }
  std::printf("embed_smoke: %s (as expected); dtype f32 is %zu bytes\n",
              std::string(client.status().message()).c_str(), ferry::DTypeSize(ferry::DType::kF32));
  return 0;
}
