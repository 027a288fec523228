#include "runtime/gc/sweep.hpp"

#include <pthread.h>
#include <sched.h>

#include <bit>

#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/core/bits.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/queue.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "runtime/stats/mprof.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {


// Objects whose destructor is due, and the destructor thread's wake-up: a sweep that queued any
// notifies it once per span (no system call unless it sleeps).
using DestroyQueue = ChunkQueue<void*>;
DestroyQueue g_destroy(stats().other_sys);
EventCount g_destroy_event;

// Decides the fate of an unmarked object with a type entry: true when its slot can be freed.
bool reclaimable(uint16_t* type_slot, uintptr_t obj) {
  uint16_t t = load_type_acquire(type_slot);  // 0 after a destructor: its writes came first
  if (t == 0) return true;
  if (t == kDestroying || (t & kPendingDestroy)) return false;  // destructor queued or running
  if (type_info(t).destroy) {
    store_type(type_slot, t | kPendingDestroy);
    g_destroy.push(reinterpret_cast<void*>(obj));
    return false;
  }
  store_type(type_slot, 0);
  return true;
}

}  // namespace

namespace {
std::atomic<uint64_t> g_pages_swept{0};     // since the last cycle
std::atomic<uint64_t> g_alloc_since{0};     // bytes allocated since the last cycle
std::atomic<double> g_pages_per_byte{0};
std::atomic<bool> g_sweep_done{true};
}  // namespace

bool sweep_span(Span* s, bool may_free) {
  g_pages_swept.fetch_add(s->npages, std::memory_order_relaxed);
  uint32_t sg = gc_state().sweepgen.load(std::memory_order_relaxed);
  s->sweepgen.store(sg - 1, std::memory_order_relaxed);
  // Ordered before the mark bits change: weak_target reads a bit, then sweepgen again.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // The specials of dead objects first (mfinal.hpp): a finalizer resurrects its object, marked
  // here before the bits below decide what is freed. The resurrected bytes are live again.
  if (std::atomic_ref<Special*>(s->specials).load(std::memory_order_relaxed)) {
    if (uint64_t resurrected = sweep_specials(s))
      gc_state().heap_live.fetch_add(resurrected, std::memory_order_relaxed);
  }
  uint64_t nfreed = 0;
  uint32_t nalloc = 0;
  bool queued_destructors = false;
  for (int w = 0; w < s->bitmap_words(); ++w) {
    uint64_t alloc = s->allocbits[w];
    uint64_t live = s->mark_word(w) & alloc;
    uint64_t dead = alloc & ~live;
    if (dead && s->destructors) {
      for (uint64_t d = dead; d; d &= d - 1) {
        uint32_t i = static_cast<uint32_t>(w * 64 + std::countr_zero(d));
        if (!reclaimable(&s->types[i], s->object_addr(i))) live |= uint64_t{1} << (i & 63);
      }
      queued_destructors = true;  // (or found some queued already: a spare notification)
      dead = alloc & ~live;
    }
    nfreed += static_cast<uint64_t>(popcount64(dead));
    nalloc += static_cast<uint32_t>(popcount64(live));
    s->set_alloc_word(w, live);
  }
  if (queued_destructors) g_destroy_event.notify();
  s->clear_marks();
  s->nalloc = static_cast<uint16_t>(nalloc);
  s->needzero = true;
  if (nfreed) {
    StatsUpdate batch;  // before the span goes back to the page heap: HeapAlloc <= HeapInuse
    if (s->sizeclass == 0) {
      stats().large_frees.fetch_add(1, std::memory_order_relaxed);
      stats().large_free_bytes.fetch_add(s->elemsize, std::memory_order_relaxed);
    } else {
      stats().small_frees[s->sizeclass].fetch_add(nfreed, std::memory_order_relaxed);
    }
  }
  if (nalloc == 0 && s->sizeclass != 0) forget_types(s);  // freed or kept, it holds no object
  s->sweepgen.store(sg, std::memory_order_release);
  if (nalloc == 0 && (may_free || s->sizeclass == 0)) {
    if (s->sizeclass != 0) markbytes_free(s->sizeclass, s->markbytes);
    mheap().free(s);
    return false;
  }
  return true;
}

namespace {
// Sweeps in progress: a span taken off an unswept list is in no list until its sweep ends.
std::atomic<int> g_sweeping{0};
// The heap profile's frees of this cycle's sweep are still to be published (profile_post_sweep).
std::atomic<bool> g_post_sweep_due{false};
}  // namespace

SweepScope::SweepScope() { g_sweeping.fetch_add(1, std::memory_order_acq_rel); }
SweepScope::~SweepScope() {
  // The last sweep to end once none is left: every free of this sweep is counted.
  if (g_sweeping.fetch_sub(1, std::memory_order_acq_rel) == 1 && g_sweep_done.load(std::memory_order_acquire) &&
      g_post_sweep_due.exchange(false, std::memory_order_acq_rel))
    profile_post_sweep();
}

bool sweeps_in_progress() { return g_sweeping.load(std::memory_order_acquire) != 0; }

bool sweep_one(int* cursor) {
  SweepScope active;
  for (; *cursor < kNumSpanClasses; ++*cursor) {
    if (Span* s = central(*cursor).take_unswept()) {
      if (sweep_span(s, true)) central(*cursor).put_swept(s);
      return true;
    }
  }
  if (Span* s = large_spans().take_unswept()) {
    if (sweep_span(s, true)) large_spans().put_swept(s);
    return true;
  }
  g_sweep_done.store(true, std::memory_order_release);
  return false;
}

void sweep_pacing_start(uint64_t heap_live, uint64_t trigger) {
  g_sweep_done.store(false, std::memory_order_relaxed);
  g_post_sweep_due.store(true, std::memory_order_relaxed);
  g_pages_swept.store(0, std::memory_order_relaxed);
  g_alloc_since.store(0, std::memory_order_relaxed);
  uint64_t pages = stats().heap_inuse.load(std::memory_order_relaxed) >> kPageShift;
  uint64_t distance = trigger > heap_live ? trigger - heap_live : 0;
  // Go keeps at least 1 MiB of distance (sweepMinHeapDistance, in the pacer's trigger).
  if (distance < (1 << 20)) distance = 1 << 20;
  g_pages_per_byte.store(static_cast<double>(pages) / static_cast<double>(distance), std::memory_order_relaxed);
}

void sweep_on_alloc(uint64_t bytes) {
  if (g_sweep_done.load(std::memory_order_relaxed)) return;
  uint64_t since = g_alloc_since.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  auto owed = static_cast<uint64_t>(static_cast<double>(since) * g_pages_per_byte.load(std::memory_order_relaxed));
  for (int cursor = 0; g_pages_swept.load(std::memory_order_relaxed) < owed;) {
    if (!sweep_one(&cursor)) break;
  }
}

bool sweep_done() { return g_sweep_done.load(std::memory_order_relaxed); }

void finish_sweep() {
  int cursor = 0;
  while (sweep_one(&cursor)) {
  }
}

namespace {
std::atomic<uint32_t> g_sweep_wake{0};
std::atomic<bool> g_sweeper_stop{false};
pthread_t g_sweeper;

void* sweeper_main(void*) {
  attach_current_thread(/*scan_stack=*/false);
  // Background sweeping uses idle cores only (Linux's SCHED_IDLE): allocation sweeps in
  // proportion to itself (sweep_on_alloc), so the sweep finishes in time whatever this thread gets.
  sched_param prio{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &prio);
  while (!g_sweeper_stop.load(std::memory_order_acquire)) {
    uint32_t seen = g_sweep_wake.load(std::memory_order_acquire);
    for (int cursor = 0;;) {
      // One span per critical section: a stop-the-world never waits for more than one span.
      CriticalSection cs;
      if (!sweep_one(&cursor)) break;
    }
    blocked_wait([seen] { futex_wait(&g_sweep_wake, seen, 1000000000); });
  }
  detach_current_thread();
  return nullptr;
}

std::atomic<bool> g_destructor_stop{false};
pthread_t g_destructor;

// Pops one object and runs its destructor; false when none is queued. Out of line, and the
// caller scrubs its stack afterwards, so no stale copy of the pointer outlives the call.
__attribute__((noinline)) bool destroy_one() {
  void* obj;
  uint16_t type;
  {
    CriticalSection cs;
    if (!g_destroy.pop(&obj)) return false;
    // Off the queue (runtime metadata, not a root) onto this thread's stack, which a running
    // mark may have scanned already: shaded, as the finalizer goroutine shades what it takes, so
    // that nothing a scanned stack holds is white (only GODEBUG=gccheckmark=1 would notice: the
    // queue's states, not the mark, decide when this slot is freed).
    if (gc_marking()) shade(obj);
    Span* s = mheap().arenas().span_of(reinterpret_cast<uintptr_t>(obj));
    uint16_t* slot = &s->types[s->object_index(reinterpret_cast<uintptr_t>(obj))];
    type = load_type(slot) & ~kPendingDestroy;
    store_type(slot, kDestroying);  // from here on the object is never traced
  }
  // obj stays on this stack while the destructor runs, so its slot cannot be freed under it.
  type_info(type).destroy(obj);
  CriticalSection cs;
  Span* s = mheap().arenas().span_of(reinterpret_cast<uintptr_t>(obj));
  store_type_release(&s->types[s->object_index(reinterpret_cast<uintptr_t>(obj))], 0);
  asm volatile("" : : "r"(obj) : "memory");
  return true;
}

void* destructor_main(void*) {
  attach_current_thread(/*scan_stack=*/true, /*program=*/false);
  for (;;) {
    uint32_t key = g_destroy_event.prepare();
    if (destroy_one()) continue;
    scrub_stack();  // before sleeping: no stale copy of the last object may keep it alive
    if (g_destructor_stop.load(std::memory_order_acquire)) break;
    blocked_wait([key] { g_destroy_event.wait(key, 100000000); });
  }
  detach_current_thread();
  return nullptr;
}
}  // namespace

void wake_sweeper() {
  g_sweep_wake.fetch_add(1, std::memory_order_release);
  futex_wake(&g_sweep_wake);
}

void start_sweeper() {
  g_sweeper_stop.store(false);
  g_sweeper = start_service_thread(sweeper_main, nullptr, "gort-sweep");
}

void stop_sweeper() {
  g_sweeper_stop.store(true);
  wake_sweeper();
  join_service_thread(g_sweeper);
}

void start_destructor_thread() {
  g_destructor_stop.store(false);
  g_destructor = start_service_thread(destructor_main, nullptr, "gort-destroy");
}

void stop_destructor_thread() {
  g_destructor_stop.store(true);
  g_destroy_event.notify();
  join_service_thread(g_destructor);
}

size_t pending_destructors() { return g_destroy.size(); }

}  // namespace gort::internal
