// Orderly shutdown on SIGINT/SIGTERM without a signal handler and without a signal thread.
//
// main calls BlockTerminationSignals first, before any thread starts (every thread inherits
// the mask, so no other thread is interrupted), sets everything up, and then takes the signal
// with WaitForTerminationSignal on its own thread. A signal that arrives during start-up stays
// pending and is taken at once. SIGPIPE stays blocked for good (a peer closing a socket is an
// error return, not a process death).
#pragma once

#include <signal.h>

namespace ferry {

// Blocks SIGINT, SIGTERM and SIGPIPE in the calling thread; returns the set to wait on
// (SIGINT and SIGTERM).
sigset_t BlockTerminationSignals();

// Blocks until one signal of `set` arrives; returns its number.
int WaitForTerminationSignal(const sigset_t& set);

}  // namespace ferry
