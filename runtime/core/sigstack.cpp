#include "runtime/core/sigstack.hpp"

#include <signal.h>

namespace gort::internal {

int add_signal_stack_to_handlers() {
  int changed = 0;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa {};
    // glibc refuses its own real-time signals (SIGCANCEL, SIGSETXID) and so does the kernel
    // for numbers it lacks: nothing to change there.
    if (sigaction(sig, nullptr, &sa) != 0) continue;
    bool function = (sa.sa_flags & SA_SIGINFO) ? sa.sa_sigaction != nullptr
                                               : sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
    if (!function || (sa.sa_flags & SA_ONSTACK)) continue;
    sa.sa_flags |= SA_ONSTACK;
    if (sigaction(sig, &sa, nullptr) == 0) ++changed;
  }
  return changed;
}

}  // namespace gort::internal
