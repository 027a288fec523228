#include "runtime/gc/roots.hpp"

#include <gort/heap.hpp>

#include <cstdint>

#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {

constexpr size_t kSlotsPerChunk = 1022;
struct Chunk {
  Chunk* next;
  size_t used;  // slots handed out at least once
  void* slots[kSlotsPerChunk];
};

SpinLock g_lock;
Chunk* g_chunks = nullptr;
// Free slots are linked through themselves. A link points into a chunk, never into the heap, so
// the scan ignores it like any other non-heap word; no tagging is needed (managed pointers may
// be odd: tiny objects).
void** g_free = nullptr;
size_t g_live = 0;
PersistentAlloc g_pa(stats().gc_sys);

using RootLock = RuntimeLockGuard<SpinLock>;

}  // namespace

void** root_acquire(const void* p) noexcept {
  RootLock l(g_lock);
  void** slot;
  if (g_free) {
    slot = g_free;
    g_free = static_cast<void**>(*slot);
  } else {
    if (!g_chunks || g_chunks->used == kSlotsPerChunk) {
      auto* c = static_cast<Chunk*>(g_pa.alloc(sizeof(Chunk)));
      c->next = g_chunks;
      g_chunks = c;
    }
    slot = &g_chunks->slots[g_chunks->used++];
  }
  *slot = const_cast<void*>(p);
  ++g_live;
  if (gc_marking()) shade(p);  // a new root: the slots may have been scanned already
  return slot;
}

void root_release(void** slot) noexcept {
  RootLock l(g_lock);
  if (gc_marking()) shade(*slot);  // the deletion half of the barrier
  *slot = g_free;
  g_free = slot;
  --g_live;
}

void root_store(void** slot, const void* p) noexcept {
  if (write_barrier_enabled.load(std::memory_order_relaxed)) write_barrier(slot, p);
  std::atomic_ref<void*>(*slot).store(const_cast<void*>(p), std::memory_order_release);
}

size_t scan_roots_table(MarkWorker& w) {
  LockGuard g(g_lock);
  for (Chunk* c = g_chunks; c; c = c->next) {
    for (size_t i = 0; i < c->used; ++i) {
      auto v = reinterpret_cast<uintptr_t>(std::atomic_ref<void*>(c->slots[i]).load(std::memory_order_acquire));
      w.mark(v);
    }
  }
  return g_live * sizeof(void*);
}

size_t live_root_slots() {
  RootLock l(g_lock);
  return g_live;
}

}  // namespace gort::internal
