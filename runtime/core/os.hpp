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

#include "runtime/core/sanitizer.hpp"

namespace gort::internal {

// The futex system call, made directly rather than through libc's syscall(): with segmented
// stacks a call into code built without -fsplit-stack (libc) makes the linker route the caller
// through libgcc's __morestack_non_split, which wants a 1 MiB segment. Waking a goroutine's M
// happens on the goroutine's small first stack (a channel send, a spawn), so it must stay a plain
// instruction sequence.
inline long futex_syscall(std::atomic<uint32_t>* addr, int op, uint32_t val, const timespec* timeout) {
#if defined(__x86_64__)
  long ret;
  register long r10 asm("r10") = reinterpret_cast<long>(timeout);
  register long r8 asm("r8") = 0;
  register long r9 asm("r9") = 0;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(static_cast<long>(SYS_futex)), "D"(addr), "S"(static_cast<long>(op)), "d"(static_cast<long>(val)),
                 "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
#else
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, timeout, nullptr, 0);
#endif
}

// ThreadSanitizer builds: TSan runs a signal's handler only when the thread next passes through
// TSan (an intercepted call, an atomic operation) or at once in a call it knows blocks; a raw
// futex wait is neither, so a thread that a stop signals while it waits here would never answer.
// Its waits are cut into slices of this length, each followed by an atomic load.
constexpr int64_t kTsanFutexSliceNs = 2000000;

// Sleeps while *addr == val, at most timeout_ns (negative: no limit). Spurious wake-ups happen.
inline void futex_wait(std::atomic<uint32_t>* addr, uint32_t val, int64_t timeout_ns = -1) {
  if (kThreadSanitizer && (timeout_ns < 0 || timeout_ns > kTsanFutexSliceNs)) timeout_ns = kTsanFutexSliceNs;
  timespec ts{static_cast<time_t>(timeout_ns / 1000000000), static_cast<long>(timeout_ns % 1000000000)};
  futex_syscall(addr, FUTEX_WAIT_PRIVATE, val, timeout_ns >= 0 ? &ts : nullptr);
  if (kThreadSanitizer) (void)addr->load(std::memory_order_relaxed);  // runs a signal held back meanwhile
}
inline void futex_wake(std::atomic<uint32_t>* addr, int n = INT_MAX) {
  futex_syscall(addr, FUTEX_WAKE_PRIVATE, static_cast<uint32_t>(n), nullptr);
}

// Whether the calling thread runs on its alternate signal stack (sigaltstack's SS_ONSTACK). In a
// signal handler the kernel's answer is the only reliable one: the alternate stack may be mapped
// right below the interrupted stack, so comparing addresses is not. A raw system call, as above.
// The calling thread's alternate signal stack (sigaltstack(nullptr, ss)); false on failure.
inline bool current_signal_stack(stack_t* ss) {
#if defined(__x86_64__)
  long ret;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(static_cast<long>(SYS_sigaltstack)), "D"(0L), "S"(ss)
               : "rcx", "r11", "memory");
  return ret == 0;
#else
  return sigaltstack(nullptr, ss) == 0;
#endif
}
inline bool on_alternate_signal_stack() {
  stack_t ss{};
  return current_signal_stack(&ss) && (ss.ss_flags & SS_ONSTACK) != 0;
}

// A sequence number that waiters sleep on and notifiers bump, with a count of the sleepers so
// that a notification nobody waits for costs no system call (an event count, as Folly's and
// Eigen's). A waiter reads prepare() before it checks its condition, then wait()s with that key;
// a notifier makes the condition true, then notify()s. Both sides order their two accesses
// sequentially consistently: either the notifier sees the sleeper and wakes it, or the sleeper's
// futex sees the bumped number and does not sleep.
struct EventCount {
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> sleepers{0};

  uint32_t prepare() const { return seq.load(std::memory_order_seq_cst); }
  void wait(uint32_t key, int64_t timeout_ns = -1) {
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    futex_wait(&seq, key, timeout_ns);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
  void notify() {
    seq.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst)) futex_wake(&seq);
  }
};

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

// clock_gettime through a pointer held in data: the linker sees neither a call nor a reference
// in code, so it does not make the caller ask for a 1 MiB split-stack segment (core/mem.hpp).
// The call needs only a few dozen bytes of stack (it reads the vDSO's clock), well within the
// room libgcc keeps below every split-stack guard (3.5 KiB with gcc 12). Timers and the mutex's
// starvation clock run on goroutine stacks.
inline int (*g_read_clock)(clockid_t, timespec*) = clock_gettime;
inline uint64_t clock_ns(clockid_t clock) {
  timespec ts;
  g_read_clock(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
inline uint64_t nanotime() { return clock_ns(CLOCK_MONOTONIC); }          // Go's nanotime
inline uint64_t unixnano() { return clock_ns(CLOCK_REALTIME); }           // Go's time.Now().UnixNano()
inline uint64_t thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace gort::internal
