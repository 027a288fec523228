// Thin wrappers over the Linux primitives the runtime uses everywhere: futexes and clocks.
#pragma once
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace gort::internal {

// Sleeps while *addr == val, at most timeout_ns (negative: no limit). Spurious wake-ups happen.
inline void futex_wait(std::atomic<uint32_t>* addr, uint32_t val, int64_t timeout_ns = -1) {
  timespec ts{static_cast<time_t>(timeout_ns / 1000000000), static_cast<long>(timeout_ns % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAIT_PRIVATE, val, timeout_ns >= 0 ? &ts : nullptr,
          nullptr, 0);
}
inline void futex_wake(std::atomic<uint32_t>* addr, int n = INT_MAX) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

// Installs fn for sig with SA_SIGINFO | flags, every signal blocked while it runs; the previous
// disposition goes to *prev when given. False when the OS refuses.
inline bool install_signal_handler(int sig, void (*fn)(int, siginfo_t*, void*), int flags,
                                   struct sigaction* prev = nullptr) {
  struct sigaction sa {};
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO | flags;
  sigfillset(&sa.sa_mask);
  return sigaction(sig, &sa, prev) == 0;
}

inline uint64_t clock_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
inline uint64_t nanotime() { return clock_ns(CLOCK_MONOTONIC); }          // Go's nanotime
inline uint64_t unixnano() { return clock_ns(CLOCK_REALTIME); }           // Go's time.Now().UnixNano()
inline uint64_t thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace gort::internal
