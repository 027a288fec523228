// The write barrier (Go's mbarrier.go): the hybrid barrier of Go's proposal 17503.
//
// While a concurrent mark runs (write_barrier_enabled), every store of a managed pointer into
// the heap or a root shades both the pointer it overwrites and the pointer it stores:
//   - shading the overwritten pointer (Yuasa's deletion barrier) keeps what was reachable when
//     marking began reachable for the marker, however the mutator rearranges the heap: an object
//     unlinked from the heap is shaded at the moment it is unlinked;
//   - shading the stored pointer (Dijkstra's insertion barrier) covers a stack that has not been
//     scanned yet handing a pointer to the heap and then dropping it; as in Go, only while the
//     storing goroutine's (or thread's) stack is grey: a black stack holds nothing unmarked.
// With both, a stack needs scanning once per cycle and never again (mgcmark.cpp): once scanned
// (black), anything it later holds came from the heap, from a root, or from an allocation, all
// of which are covered. New objects are allocated black (mcache.cpp); because their
// constructors' stores run no barrier, make<T> shades the new object's contents once
// (kShadeNew) while the allocating stack is grey, which covers pointers a constructor copied from
// a stack not yet scanned. Each goroutine and thread scans its own stack at its first span
// refill of the cycle (malloc.cpp), so both extra shadings stop early.
//
// What runs the barrier: Ref<T> assignment, Array<Ref<T>> element assignment (they are Refs),
// Root<T> creation, assignment and release, channel sends and receives (buffered or handed over
// directly), finalizer and cleanup queue pops, weak pointer get(). A raw T* member is not a
// traced field: Tracer::visit(T*) does not compile (include/gort/heap.hpp), so it cannot be
// forgotten by the barrier.
//
// Cost outside a cycle: one load and a predictable branch in Ref<T>'s assignment. Inside: the
// pointers go to a per-thread buffer (WbBuf, in the thread's allocation cache); a full buffer is
// marked by its own thread, inside a critical section, on the M's stack. The collector flushes
// every buffer before mark termination and at it, with the owners stopped. A thread stopped in
// the middle of an append has not stored its pointer yet (the barrier runs before the store):
// the old value is then still in the slot when the collector looks, and the store happens after
// the mark ends.
#include <gort/heap.hpp>

#include <atomic>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

std::atomic<bool> write_barrier_enabled{false};

bool gc_marking() { return write_barrier_enabled.load(std::memory_order_relaxed); }

namespace {
// Threads that are not attached have no buffer: their pointers go to one shared list.
struct ShadeChunk {
  static constexpr size_t kCap = 510;
  ShadeChunk* next;
  size_t n;
  uintptr_t ptrs[kCap];
};
SpinLock g_lock;
ShadeChunk* g_full = nullptr;
ShadeChunk* g_free = nullptr;
PersistentAlloc g_pa(stats().gc_sys);

void shade_unattached(uintptr_t p) {
  LockGuard g(g_lock);
  if (!g_full || g_full->n == ShadeChunk::kCap) {
    ShadeChunk* c = g_free ? g_free : static_cast<ShadeChunk*>(g_pa.alloc(sizeof(ShadeChunk)));
    if (c == g_free) g_free = g_free->next;
    c->n = 0;
    c->next = g_full;
    g_full = c;
  }
  g_full->ptrs[g_full->n++] = p;
}

bool in_heap(uintptr_t p) {
  const ArenaMap& a = mheap().arenas();
  return p - a.lo() < a.hi() - a.lo();
}

__attribute__((noinline)) void flush_own_buffer(WbBuf& b) {
  CriticalSection cs;
  on_system_stack([&] { wb_flush(b); });  // marking may map memory: not on a goroutine's stack
}

// Appends p (already known to be in the heap) to the calling thread's buffer. The entry is
// written before the count that publishes it, as the collector may read the buffer of a thread
// stopped at any instruction.
inline void append(uintptr_t p) {
  Cache* c = t_front.cache;
  if (!c) [[unlikely]] {
    shade_unattached(p);
    return;
  }
  WbBuf& b = c->wb;
  uint32_t n = b.n;
  b.e[n] = p;
  std::atomic_signal_fence(std::memory_order_release);
  // Atomic (a plain store on x86): flush_barrier_buffers_concurrently peeks at the count.
  std::atomic_ref<uint32_t>(b.n).store(n + 1, std::memory_order_relaxed);
  if (n + 1 == kWbBufEntries) [[unlikely]] flush_own_buffer(b);
}
}  // namespace

void write_barrier(void* const* slot, const void* value) noexcept {
  auto old = reinterpret_cast<uintptr_t>(std::atomic_ref<void* const>(*slot).load(std::memory_order_relaxed));
  auto v = reinterpret_cast<uintptr_t>(value);
  if (old && in_heap(old)) append(old);
  if (v && in_heap(v) && !current_stack_black()) append(v);
}

void shade(const void* p) noexcept {
  auto v = reinterpret_cast<uintptr_t>(p);
  if (v && in_heap(v)) append(v);
}

void shade_range(const void* p, size_t n) noexcept {
  auto* w = static_cast<const uintptr_t*>(p);
  for (size_t i = 0; i < n / sizeof(uintptr_t); ++i)
    if (in_heap(w[i])) append(w[i]);
}

void shade_new_object(const void* obj) noexcept {
  if (!current_stack_black()) append(reinterpret_cast<uintptr_t>(obj) | kShadeNew);
}

void wb_flush(WbBuf& b) {
  uint32_t n = b.n;
  if (!n) return;
  work_begin();
  {
    MarkWorker w;
    for (uint32_t i = 0; i < n; ++i) {
      uintptr_t e = b.e[i];
      if (e & kShadeNew) w.push_new_object(e & ~kShadeNew);
      else w.mark(e);
    }
    cycle_mark_account(w);
  }  // published
  std::atomic_ref<uint32_t>(b.n).store(0, std::memory_order_relaxed);
  work_end();
}

size_t drain_shaded(MarkWorker& w) {
  LockGuard g(g_lock);
  size_t n = 0;
  while (ShadeChunk* c = g_full) {
    g_full = c->next;
    for (size_t i = 0; i < c->n; ++i) {
      uintptr_t e = c->ptrs[i];
      if (e & kShadeNew) w.push_new_object(e & ~kShadeNew);
      else w.mark(e);
    }
    n += c->n;
    c->next = g_free;
    g_free = c;
  }
  return n;
}

}  // namespace gort::internal
