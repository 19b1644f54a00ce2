#include "common/signals.h"

#include <pthread.h>

#include <cerrno>

namespace ferry {

sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  sigdelset(&set, SIGPIPE);
  return set;
}

int WaitForTerminationSignal(const sigset_t& set) {
  int signo = 0;
  // sigwait only fails for an invalid set; retry rather than return a made-up signal.
  while (sigwait(&set, &signo) != 0) {
  }
  return signo;
}

}  // namespace ferry
