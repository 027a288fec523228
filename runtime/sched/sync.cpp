// WaitGroup and Mutex (Go's sync/waitgroup.go and sync/mutex.go) on the scheduler's Waiter.
#include <gort/sync.hpp>

#include <stdexcept>

#include "runtime/core/lock.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/panic.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::internal {

namespace {

// SyncState's lock is a SpinLock's layout: an atomic flag.
SpinLock& lock_of(SyncState& s) {
  static_assert(sizeof(SpinLock) == sizeof(s.lock));
  return *reinterpret_cast<SpinLock*>(&s.lock);
}

void push_back(SyncState& s, Waiter* w) {
  w->next = nullptr;
  if (s.tail) static_cast<Waiter*>(s.tail)->next = w; else s.head = w;
  s.tail = w;
}
void push_front(SyncState& s, Waiter* w) {
  w->next = static_cast<Waiter*>(s.head);
  s.head = w;
  if (!s.tail) s.tail = w;
}
Waiter* pop_front(SyncState& s) {
  auto* w = static_cast<Waiter*>(s.head);
  if (w) {
    s.head = w->next;
    if (!s.head) s.tail = nullptr;
  }
  return w;
}

constexpr int64_t kStarvationNs = 1000000;  // Go's starvationThresholdNs: 1 ms

}  // namespace

void wg_add(SyncState& s, int64_t delta) {
  enter_critical();
  SpinLock& l = lock_of(s);
  l.lock();
  s.value += delta;
  if (s.value < 0) {
    s.value -= delta;
    l.unlock();
    leave_critical();
    throw_logic_error("sync: negative WaitGroup counter");
  }
  // Wake the waiters only after the last touch of s: a waiter may return from Wait and free the
  // WaitGroup the moment it is woken (Go's rule: Done's last access precedes the wake-up).
  Waiter* woken = nullptr;
  if (s.value == 0) {
    woken = static_cast<Waiter*>(s.head);
    s.head = s.tail = nullptr;
  }
  l.unlock();
  while (woken) {
    Waiter* next = woken->next;
    ready(*woken);
    woken = next;
  }
  leave_critical();
}

void wg_wait(SyncState& s) {
  Waiter w;
  init_waiter(w);
  w.wait_reason = "sync.WaitGroup.Wait";
  enter_critical();
  SpinLock& l = lock_of(s);
  l.lock();
  if (s.value == 0) {
    l.unlock();
    leave_critical();
    return;
  }
  push_back(s, &w);
  park(w, l);
}

void mutex_lock_slow(SyncState& s) {
  int64_t started = 0;
  bool waited = false;
  for (;;) {
    // Spin a little while the holder is likely running (not when starving: hand-off order rules).
    for (int spin = 0; spin < 4 && !waited; ++spin) {
      uint32_t st = s.state.load(std::memory_order_relaxed);
      if (!(st & (Mutex::kLocked | Mutex::kStarving)) &&
          s.state.compare_exchange_weak(st, st | Mutex::kLocked, std::memory_order_acquire))
        return;
      for (int k = 0; k < 30; ++k) cpu_relax();
    }
    Waiter w;
    init_waiter(w);
    w.wait_reason = "sync.Mutex.Lock";
    enter_critical();
    SpinLock& l = lock_of(s);
    l.lock();
    // The fast path takes the lock without the queue lock: only a CAS may take it here too.
    for (uint32_t st = s.state.load(std::memory_order_relaxed); !(st & (Mutex::kLocked | Mutex::kStarving));) {
      if (s.state.compare_exchange_weak(st, st | Mutex::kLocked, std::memory_order_acquire)) {
        l.unlock();
        leave_critical();
        return;
      }
    }
    // The lock is held. A waiter that has waited over 1 ms switches to starvation mode: the
    // holder's unlock then hands the lock over instead of letting newcomers take it. Only set
    // while the lock is held (the queue lock keeps any unlock out), so kStarving implies kLocked.
    int64_t now = static_cast<int64_t>(nanotime());
    if (!started) started = now;
    if (waited && now - started > kStarvationNs) s.state.fetch_or(Mutex::kStarving, std::memory_order_relaxed);
    w.data = &started;
    ++s.value;
    if (waited) push_front(s, &w); else push_back(s, &w);  // a woken waiter that lost keeps its place
    park(w, l);
    if (w.ok) return;  // handed the lock directly (starvation mode)
    waited = true;
  }
}

void mutex_unlock_slow(SyncState& s) {
  enter_critical();
  SpinLock& l = lock_of(s);
  l.lock();
  uint32_t st = s.state.load(std::memory_order_relaxed);
  if (!(st & Mutex::kLocked)) {
    l.unlock();
    leave_critical();
    throw_logic_error("sync: unlock of unlocked mutex");
  }
  Waiter* w = pop_front(s);
  if (!w) {
    s.state.fetch_and(~(Mutex::kLocked | Mutex::kStarving), std::memory_order_release);
  } else {
    --s.value;
    if (st & Mutex::kStarving) {
      // Starvation mode: ownership goes to the first waiter; the lock stays held.
      w->ok = true;
      int64_t waited = static_cast<int64_t>(nanotime()) - *static_cast<int64_t*>(w->data);
      if (s.value == 0 || waited < kStarvationNs) s.state.store(Mutex::kLocked, std::memory_order_relaxed);
    } else {
      w->ok = false;  // normal mode: the woken waiter competes with newcomers
      s.state.fetch_and(~Mutex::kLocked, std::memory_order_release);
    }
  }
  l.unlock();
  if (w) ready(*w);  // after the last touch of s, which the woken waiter may free
  leave_critical();
}

}  // namespace gort::internal
