// The write barrier (Go's mbarrier.go).
//
// Ref<T> assignment checks write_barrier_enabled, one predictable branch. The flag is only set
// while marking runs concurrently with the program; this version marks with the world stopped,
// so the flag stays false and the barrier is the hook the concurrent collector will use. When it
// is on, the barrier is Dijkstra's insertion barrier: the pointer being stored is shaded (queued
// grey), so the marker cannot miss an object moved behind its back into an already-scanned one.
#include <gort/heap.hpp>

#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mark.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

std::atomic<bool> write_barrier_enabled{false};

namespace {
struct ShadeChunk {
  static constexpr size_t kCap = 510;
  ShadeChunk* next;
  size_t n;
  const void* ptrs[kCap];
};
SpinLock g_lock;
ShadeChunk* g_full = nullptr;
ShadeChunk* g_free = nullptr;
PersistentAlloc g_pa(stats().gc_sys);
}  // namespace

void write_barrier(void* const*, const void* value) noexcept {
  if (!value) return;
  LockGuard g(g_lock);
  if (!g_full || g_full->n == ShadeChunk::kCap) {
    ShadeChunk* c = g_free ? g_free : static_cast<ShadeChunk*>(g_pa.alloc(sizeof(ShadeChunk)));
    if (c == g_free) g_free = g_free->next;
    c->n = 0;
    c->next = g_full;
    g_full = c;
  }
  g_full->ptrs[g_full->n++] = value;
}

size_t drain_shaded(MarkWorker& w) {
  LockGuard g(g_lock);
  size_t n = 0;
  while (ShadeChunk* c = g_full) {
    g_full = c->next;
    for (size_t i = 0; i < c->n; ++i) w.mark(reinterpret_cast<uintptr_t>(c->ptrs[i]));
    n += c->n;
    c->next = g_free;
    g_free = c;
  }
  return n;
}

}  // namespace gort::internal
