// absl::Status <-> grpc::Status. Their codes are the same numbers, so errors cross the
// control plane unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ferry {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace ferry
