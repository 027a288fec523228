// SpinLock: the runtime's internal lock.
//
// Runtime locks are held for short, bounded sections and, on mutator threads, only inside a
// critical section (see core/thread.hpp), so a thread is never stopped for a collection while it
// holds one. Waiters spin briefly, then yield the CPU.
#pragma once
#include <sched.h>
#include <sys/syscall.h>

#include <atomic>

namespace gort::internal {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// sched_yield(2), made directly: a libc call would make every function that takes a lock ask for
// a 1 MiB stack segment first when built with split stacks (see core/mem.hpp).
inline void os_yield() {
#if defined(__x86_64__)
  long ret;
  asm volatile("syscall" : "=a"(ret) : "a"(static_cast<long>(SYS_sched_yield)) : "rcx", "r11", "memory");
#else
  sched_yield();
#endif
}

class SpinLock {
 public:
  void lock() {
    for (int spins = 0;; ++spins) {
      if (!held_.load(std::memory_order_relaxed) && !held_.exchange(true, std::memory_order_acquire)) return;
      if (spins < 64) cpu_relax(); else os_yield();
    }
  }
  bool try_lock() { return !held_.load(std::memory_order_relaxed) && !held_.exchange(true, std::memory_order_acquire); }
  void unlock() { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

template <class L>
class LockGuard {
 public:
  explicit LockGuard(L& l) : l_(l) { l_.lock(); }
  ~LockGuard() { l_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  L& l_;
};

}  // namespace gort::internal
