// Orderly shutdown on SIGINT/SIGTERM without doing work inside a signal handler.
#pragma once

#include <functional>

namespace ferry {

// Blocks SIGINT, SIGTERM and SIGPIPE in the calling thread (call it first in main, before
// any thread starts, so every thread inherits the mask) and starts a thread that waits for
// SIGINT/SIGTERM with sigwait and then runs `on_signal` once. SIGPIPE stays ignored.
void HandleTerminationSignals(std::function<void(int signo)> on_signal);

}  // namespace ferry
