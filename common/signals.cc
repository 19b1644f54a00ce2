#include "common/signals.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace ferry {

void HandleTerminationSignals(std::function<void(int)> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  sigdelset(&set, SIGPIPE);
  std::thread([set, on_signal = std::move(on_signal)] {
    int signo = 0;
    if (sigwait(&set, &signo) == 0) on_signal(signo);
  }).detach();
}

}  // namespace ferry
