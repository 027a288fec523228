// Consistent statistics without stopping the world (design in statsupdate.hpp).
#include "runtime/core/statsupdate.hpp"

#include <sched.h>

#include <mutex>
#include <vector>

#include "runtime/core/lock.hpp"

namespace gort::internal {

namespace {
// Threads that are not attached share one number; the lock keeps their batches apart.
SpinLock g_unattached_lock;
std::atomic<uint32_t> g_unattached_seq{0};

std::mutex g_readers;          // one reader at a time: the buffer below is theirs
std::vector<uint32_t> g_seen;  // the numbers noted before a read: the unattached one, then each thread's

// Notes every number; false if a batch is under way, or the buffer is too small (then
// `*threads` says how many threads there are).
bool note_numbers(size_t* threads) {
  size_t n = 0;
  for_each_thread([&](ThreadRecord*) { ++n; });
  *threads = n;
  if (g_seen.size() < n + 1) return false;
  bool quiet = true;
  auto note = [&](size_t i, const std::atomic<uint32_t>& seq) {
    uint32_t s = seq.load(std::memory_order_acquire);
    g_seen[i] = s;
    quiet &= (s & 1) == 0;
  };
  note(0, g_unattached_seq);
  size_t i = 1;
  for_each_thread([&](ThreadRecord* r) { note(i++, r->stats_seq); });
  return quiet;
}

bool numbers_unchanged() {
  bool same = g_unattached_seq.load(std::memory_order_relaxed) == g_seen[0];
  size_t i = 1;
  for_each_thread([&](ThreadRecord* r) { same &= r->stats_seq.load(std::memory_order_relaxed) == g_seen[i++]; });
  return same;
}
}  // namespace

void stats_update_begin_unattached() {
  g_unattached_lock.lock();
  g_unattached_seq.store(g_unattached_seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void stats_update_end_unattached() {
  g_unattached_seq.store(g_unattached_seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  g_unattached_lock.unlock();
}

int read_consistently(void (*read)(void*), void* arg) {
  StoppableLockGuard readers(g_readers);
  for (int attempt = 1;; ++attempt) {
    size_t threads = 0;
    {
      StoppableLockGuard registry(registry_lock());
      if (note_numbers(&threads)) {
        read(arg);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (numbers_unchanged()) return attempt;
      }
    }
    if (g_seen.size() < threads + 1) g_seen.resize(threads + 16);  // outside the registry lock
    else if (attempt % 8 == 0) sched_yield();  // a writer may be waiting for this processor
  }
}

}  // namespace gort::internal
