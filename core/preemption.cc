#include "core/preemption.h"

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

namespace tessera::preemption {
namespace {

std::atomic<bool> g_stop{false};

}  // namespace

void install_stop_handlers() {
  // The signals are blocked in this thread, so in every thread created after it (MPI's, OpenMP's,
  // the communicators', the async writer), and one thread takes them with sigwait. No thread is
  // ever interrupted by them: no EINTR inside MPI, HDF5 or the kernels, no async-signal-safety
  // questions; the flag is all that changes.
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) == 0) g_stop = true;
      }
    }).detach();
  });
}

bool stop_requested() {
  return g_stop;
}
void request_stop() {
  g_stop = true;
}
void clear_stop() {
  g_stop = false;
}

}  // namespace tessera::preemption
