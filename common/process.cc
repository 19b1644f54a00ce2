#include "common/process.h"

#include "absl/synchronization/mutex.h"

namespace ferry {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace ferry
