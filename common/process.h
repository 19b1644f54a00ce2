// Process-wide settings every ferry binary applies first thing in main().
#pragma once

namespace ferry {

// Turns off absl::Mutex deadlock detection. Debian's abseil is built without NDEBUG, so
// detection is on by default: every Lock and Unlock of every absl::Mutex (gRPC 1.51 uses them
// for all its internal locks) updates a process-wide lock-order graph under one global lock.
// Measured here: 55 ns per uncontended lock pair with it, 16 ns without, and
// GraphCycles::GetId showed up in ferryd's profile on the transfer path. Only the shipped
// binaries turn it off: the unit tests keep abseil's default, so a lock-order inversion in
// ferry's own absl::Mutex use still aborts there. Call before any thread starts.
void DisableMutexDeadlockDetection();

}  // namespace ferry
