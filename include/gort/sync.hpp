// WaitGroup and Mutex (Go's sync), usable from goroutines and from attached OS threads alike.
#pragma once
#include <atomic>
#include <cstdint>

namespace gort {

namespace internal {
// A lock-protected wait queue and a counter: the state of WaitGroup and Mutex.
struct SyncState {
  std::atomic<bool> lock{false};
  void* head = nullptr;
  void* tail = nullptr;
  int64_t value = 0;                // WaitGroup: the counter; Mutex: waiters
  std::atomic<uint32_t> state{0};   // Mutex: kLocked | kStarving
};
void wg_add(SyncState& s, int64_t delta);
void wg_wait(SyncState& s);
void mutex_lock_slow(SyncState& s);
void mutex_unlock_slow(SyncState& s);
}  // namespace internal

// Waits for a collection of goroutines to finish. Add(n) before starting them, Done() in each,
// Wait() to block until the counter is zero. A negative counter throws std::logic_error.
class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;
  void Add(int64_t delta) { internal::wg_add(s_, delta); }
  void Done() { internal::wg_add(s_, -1); }
  void Wait() { internal::wg_wait(s_); }

 private:
  internal::SyncState s_;
};

// A mutual exclusion lock (Go's sync.Mutex): spins briefly, then parks; a waiter that waited
// over 1 ms switches it to starvation mode, where the lock is handed to waiters in order.
// Works with std::lock_guard / std::unique_lock. Unlocking an unlocked Mutex throws std::logic_error.
class Mutex {
 public:
  static constexpr uint32_t kLocked = 1, kStarving = 2;
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void lock() {
    uint32_t unlocked = 0;
    if (!s_.state.compare_exchange_strong(unlocked, kLocked, std::memory_order_acquire)) internal::mutex_lock_slow(s_);
  }
  bool try_lock() {
    uint32_t unlocked = 0;
    return s_.state.compare_exchange_strong(unlocked, kLocked, std::memory_order_acquire);
  }
  void unlock() { internal::mutex_unlock_slow(s_); }

 private:
  internal::SyncState s_;
};

}  // namespace gort
