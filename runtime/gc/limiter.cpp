#include "runtime/gc/limiter.hpp"

#include <atomic>

#include "runtime/core/lock.hpp"

namespace gort::internal {

namespace {
constexpr uint64_t kCapacityPerProc = 1000000000;  // one CPU-second
constexpr uint64_t kUpdatePeriod = 10000000;       // 10 ms
constexpr double kBackgroundUtilization = 0.25;

struct Limiter {
  SpinLock lock;
  uint64_t fill = 0, capacity = kCapacityPerProc;
  std::atomic<bool> enabled{false};
  bool gc_enabled = false;
  bool transitioning = false;
  std::atomic<uint64_t> last_update{0};
  std::atomic<uint64_t> assist_pool{0};
  int nprocs = 1;
  std::atomic<uint32_t> enabled_cycles{0};

  // Go's accumulate: the bucket gains gc time and loses mutator time.
  void accumulate(uint64_t mutator, uint64_t gc) {
    uint64_t headroom = capacity - fill;
    bool was = headroom == 0;
    if (gc > mutator) {
      uint64_t change = gc - mutator;
      if (headroom <= change) {
        fill = capacity;
        if (!was) {
          enabled.store(true, std::memory_order_relaxed);
          enabled_cycles.fetch_add(1, std::memory_order_relaxed);
        }
        return;
      }
      fill += change;
    } else {
      uint64_t change = mutator - gc;
      fill = fill <= change ? 0 : fill - change;
    }
    if (gc != mutator && was) enabled.store(false, std::memory_order_relaxed);
  }

  void update_locked(uint64_t now) {
    uint64_t last = last_update.load(std::memory_order_relaxed);
    if (now < last) return;
    uint64_t window = (now - last) * static_cast<uint64_t>(nprocs);
    last_update.store(now, std::memory_order_relaxed);
    uint64_t gc = assist_pool.exchange(0, std::memory_order_relaxed);
    if (gc_enabled) gc += static_cast<uint64_t>(static_cast<double>(window) * kBackgroundUtilization);
    if (gc > window) gc = window;
    accumulate(window - gc, gc);
  }
} g_limiter;
}  // namespace

bool cpu_limiter_limiting() { return g_limiter.enabled.load(std::memory_order_relaxed); }

void limiter_start_transition(bool gc_on, uint64_t now, int procs) {
  LockGuard g(g_limiter.lock);
  if (g_limiter.last_update.load(std::memory_order_relaxed) == 0) g_limiter.last_update.store(now);
  g_limiter.update_locked(now);
  g_limiter.nprocs = procs > 0 ? procs : 1;
  g_limiter.capacity = kCapacityPerProc * static_cast<uint64_t>(g_limiter.nprocs);
  if (g_limiter.fill > g_limiter.capacity) g_limiter.fill = g_limiter.capacity;
  g_limiter.gc_enabled = gc_on;
  g_limiter.transitioning = true;
}

void limiter_finish_transition(uint64_t now) {
  LockGuard g(g_limiter.lock);
  uint64_t last = g_limiter.last_update.load(std::memory_order_relaxed);
  if (now >= last) g_limiter.accumulate(0, (now - last) * static_cast<uint64_t>(g_limiter.nprocs));
  g_limiter.last_update.store(now, std::memory_order_relaxed);
  g_limiter.transitioning = false;
}

void limiter_update(uint64_t now) {
  if (now - g_limiter.last_update.load(std::memory_order_relaxed) < kUpdatePeriod) return;
  LockGuard g(g_limiter.lock);
  if (!g_limiter.transitioning) g_limiter.update_locked(now);
}

void limiter_add_assist_time(uint64_t ns) { g_limiter.assist_pool.fetch_add(ns, std::memory_order_relaxed); }

uint32_t limiter_enabled_cycles() { return g_limiter.enabled_cycles.load(std::memory_order_relaxed); }

}  // namespace gort::internal
