#include "runtime/gc/mgcwork.hpp"

#include <gort/heap.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/lock.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/sanitizer.hpp"
#include "runtime/gc/mcheckmark.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "runtime/stats/stats.hpp"

namespace gort {
struct TracerAccess {
  static Tracer make(void* worker) { return Tracer(worker); }
  static void* worker(Tracer& t) { return t.worker_; }
};
}  // namespace gort

namespace gort::internal {

constexpr int kWorkBufEntries = 510;
constexpr uint64_t kAddrMask = (uint64_t{1} << 48) - 1;

struct WorkBuf {
  WorkBuf* next;
  uint64_t n;
  uint64_t e[kWorkBufEntries];
};

namespace {

// The global queue of published buffers and the pool of empty ones. Mutators reach it (barrier
// flushes, assists) only inside critical sections, so no thread is ever stopped holding its lock.
struct WorkQueue {
  SpinLock lock;
  WorkBuf* full = nullptr;
  WorkBuf* empty = nullptr;
  std::atomic<int> nfull{0};
  std::atomic<int> nwait{0};    // stop-the-world draining: idle participants
  int nproc = 1;                // stop-the-world draining: participants
  std::atomic<int> active{0};   // concurrent marking: participants holding unpublished work
  std::atomic<int> hungry{0};   // concurrent marking: workers waiting for work
  EventCount published;  // bumped when a buffer is published
  EventCount idle;       // bumped when the last active participant ends with nothing queued
  PersistentAlloc pa{stats().gc_sys};

  WorkBuf* get_empty() {
    {
      LockGuard g(lock);
      if (WorkBuf* b = empty) {
        empty = b->next;
        b->n = 0;
        return b;
      }
    }
    auto* b = static_cast<WorkBuf*>(pa.alloc(sizeof(WorkBuf), 64));
    b->n = 0;
    return b;
  }
  void put_empty(WorkBuf* b) {
    LockGuard g(lock);
    b->next = empty;
    empty = b;
  }
  void put_full(WorkBuf* b) {
    {
      LockGuard g(lock);
      b->next = full;
      full = b;
      nfull.fetch_add(1, std::memory_order_seq_cst);
    }
    published.notify();
  }
  WorkBuf* try_get_full() {
    if (nfull.load(std::memory_order_acquire) == 0) return nullptr;
    LockGuard g(lock);
    WorkBuf* b = full;
    if (b) {
      full = b->next;
      nfull.fetch_sub(1, std::memory_order_seq_cst);
    }
    return b;
  }
} g_work;

}  // namespace

namespace {
std::atomic<uint64_t> g_cycle_marked{0}, g_cycle_work{0};
}  // namespace

void cycle_mark_account(MarkWorker& w) {
  if (uint64_t bytes = w.marked_bytes - w.accounted_bytes) g_cycle_marked.fetch_add(bytes, std::memory_order_relaxed);
  if (uint64_t work = w.scan_work - w.accounted_work) g_cycle_work.fetch_add(work, std::memory_order_relaxed);
  w.accounted_bytes = w.marked_bytes;
  w.accounted_work = w.scan_work;
}
void cycle_mark_reset() {
  g_cycle_marked.store(0, std::memory_order_relaxed);
  g_cycle_work.store(0, std::memory_order_relaxed);
}
uint64_t cycle_marked_bytes() { return g_cycle_marked.load(std::memory_order_relaxed); }
uint64_t cycle_scan_work() { return g_cycle_work.load(std::memory_order_relaxed); }

void work_begin() { g_work.active.fetch_add(1, std::memory_order_seq_cst); }
void work_end() {
  if (g_work.active.fetch_sub(1, std::memory_order_seq_cst) == 1 && g_work.nfull.load(std::memory_order_seq_cst) == 0) {
    g_work.idle.notify();  // the collector, waiting to see marking end
  }
}
bool work_drained() {
  return g_work.nfull.load(std::memory_order_seq_cst) == 0 && g_work.active.load(std::memory_order_seq_cst) == 0;
}
EventCount& work_published() { return g_work.published; }
EventCount& work_idle() { return g_work.idle; }
void wake_work_waiters() { g_work.published.notify(); }

void drain_begin(int nproc) {
  g_work.nproc = nproc;
  g_work.nwait.store(0, std::memory_order_relaxed);
}

MarkWorker::~MarkWorker() {
  publish();
  if (cur_) g_work.put_empty(cur_);
}

void MarkWorker::push(uint64_t entry) {
  if (!cur_ || cur_->n == kWorkBufEntries) [[unlikely]] {
    if (cur_) g_work.put_full(cur_);
    cur_ = g_work.get_empty();
  }
  cur_->e[cur_->n++] = entry;
}

bool MarkWorker::pop(uint64_t* entry) {
  if (!cur_ || cur_->n == 0) return false;
  *entry = cur_->e[--cur_->n];
  return true;
}

bool MarkWorker::has_local_work() const { return pending_n_ || (cur_ && cur_->n); }

// marked_bytes may count an object twice when two workers mark it at the same instant (mark
// bytes are set without a locked instruction); it feeds the pacer, never MemStats' exact counts.
inline Span* MarkWorker::span_for(uintptr_t p) {
  Span* s = last_span_;
  if (!s || p - s->base >= (s->npages << kPageShift)) [[unlikely]] {
    s = mheap().arenas().span_of_checked(p);
    if (s) last_span_ = s;
  }
  return s;
}

void MarkWorker::scan_object_contents(Span* s, uint32_t i) {
  if (s->noscan) return;
  uint16_t t = s->type_of(i);
  // A dead object waiting for its destructor (T|kPendingDestroy), or being destroyed, is not
  // traced: the sweep that found it dead freed what it points to. Only a stale conservative word
  // can reach it, and its fields would lead into freed (or reused) slots.
  if (t == 0 || t == kDestroying || (t & kPendingDestroy)) return;
  scan_work += s->elemsize;  // counted when queued: every queued object is scanned once
  push(static_cast<uint64_t>(s->object_addr(i)) | (static_cast<uint64_t>(t) << 48));
}

inline bool MarkWorker::mark_slot(Span* s, uint32_t i) {
  if (!s->try_mark(i)) return false;
  marked_bytes += s->elemsize;
  ++marked_objects;
  return true;
}

inline void MarkWorker::shade(Span* s, uint32_t i) {
  if (mark_slot(s, i)) scan_object_contents(s, i);
}

void MarkWorker::mark(uintptr_t p) {
  Span* s = span_for(p);
  if (!s) return;
  uint32_t i = s->object_index(p);
  if (i >= s->nelems || !s->is_allocated(i)) return;
  shade(s, i);
}

void MarkWorker::mark_field(uintptr_t p) {
  Span* s = span_for(p);
  if (!s) [[unlikely]] return;
  uint32_t i = s->object_index(p);
  if (i >= s->nelems) [[unlikely]] return;
  __builtin_prefetch(&s->markbytes[i], 1);
  if (const uint16_t* table = s->type_table()) __builtin_prefetch(&table[i]);
  if (pending_n_ == kPending) {
    Pending& old = pending_[pending_head_];
    Span* os = old.s;
    uint32_t oi = old.i;
    old = {s, i};
    pending_head_ = (pending_head_ + 1) % kPending;
    shade(os, oi);
    return;
  }
  pending_[(pending_head_ + pending_n_++) % kPending] = {s, i};
}

void MarkWorker::shade_pending() {
  while (pending_n_) {
    Pending x = pending_[pending_head_];
    pending_head_ = (pending_head_ + 1) % kPending;
    --pending_n_;
    shade(x.s, x.i);
  }
}

namespace {
bool g_skip_forgeable = false;
// A word a byte store can forge from a stale heap pointer: compilers keep bools and chars in
// 8-byte stack slots and store only their low byte, so a slot that once held a pointer reads as
// a pointer to a neighbouring (dead) object with its low byte replaced, typically by 0 or 1.
// Real pointers to objects are 8-byte aligned, and few end in 0x00.
bool forgeable(uintptr_t w) { return (w & 7) != 0 || (w & 0xff) == 0; }
}  // namespace

void skip_forgeable_words(bool on) { g_skip_forgeable = on; }

// Reads stacks word by word, the redzones between a sanitizer build's locals included. A word
// ASan has poisoned (core/sanitizer.hpp, dead_to_asan) is never a live pointer: redzones are never
// written, so they keep whatever an earlier, deeper frame stored there for as long as the frames
// around them live; scanned, they would keep dead objects alive indefinitely. Skipped, the scan
// is as precise as elsewhere.
GORT_NO_SANITIZE_SCAN void MarkWorker::scan_conservative(uintptr_t lo, uintptr_t hi) {
  uintptr_t heap_lo = mheap().arenas().lo(), heap_hi = mheap().arenas().hi();
  lo = round_up(lo, sizeof(uintptr_t));
  if (hi > lo) scan_work += hi - lo;
  if (g_observe_scans) [[unlikely]] checkmark_observe_scan(lo, hi);
  if (g_skip_forgeable) [[unlikely]] {
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
      uintptr_t w = *reinterpret_cast<const uintptr_t*>(a);
      if (w >= heap_lo && w < heap_hi && !forgeable(w) && !checkmark_revealed(a, w) && !dead_to_asan(a)) mark(w);
    }
    return;
  }
  for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
    uintptr_t w = *reinterpret_cast<const uintptr_t*>(a);
    if (w >= heap_lo && w < heap_hi && !dead_to_asan(a)) mark(w);
  }
}

void MarkWorker::push_new_object(uintptr_t p) {
  Span* s = span_for(p);
  if (!s) return;
  uint32_t i = s->object_index(p);
  if (i >= s->nelems) return;
  // Allocated black as a rule, but not always: an object allocated just before the mark began
  // and constructed after it is white. It is marked here: a constructed object its thread still
  // holds is live (its stack may be scanned only later), and nothing a marker handles may stay
  // white (the checking mark finds such words on stacks).
  mark_slot(s, i);
  scan_object_contents(s, i);
}

void work_hungry(bool waiting) { g_work.hungry.fetch_add(waiting ? 1 : -1, std::memory_order_relaxed); }

void MarkWorker::balance() {
  if ((g_work.nwait.load(std::memory_order_relaxed) == 0 && g_work.hungry.load(std::memory_order_relaxed) == 0) ||
      g_work.nfull.load(std::memory_order_relaxed) != 0 || cur_->n < 2)
    return;
  WorkBuf* b = g_work.get_empty();
  uint64_t half = cur_->n / 2;
  // Inline copies, not libc's (a call into libc would give this function the linker's 1 MiB
  // prologue, core/splitstack.hpp); the second overlaps, moving down: a forward copy is right.
  mem_copy(b->e, cur_->e, half * sizeof(uint64_t));
  mem_copy(cur_->e, cur_->e + half, (cur_->n - half) * sizeof(uint64_t));
  b->n = half;
  cur_->n -= half;
  g_work.put_full(b);
}

void MarkWorker::publish() {
  shade_pending();
  if (cur_ && cur_->n) {
    g_work.put_full(cur_);
    cur_ = nullptr;
  }
}

void MarkWorker::discard() {
  pending_n_ = 0;
  if (cur_) cur_->n = 0;
}

void trace_object(MarkWorker& w, uint16_t type, uintptr_t obj) {
  Tracer tracer = TracerAccess::make(&w);
  const TypeInfo& ti = type_info(type);
  if (ti.trace) ti.trace(reinterpret_cast<const void*>(obj), tracer);
  w.shade_pending();
}

void MarkWorker::scan_entry(uint64_t e, Tracer& tracer) {
  const TypeInfo& ti = type_info(static_cast<uint16_t>(e >> 48));
  if (ti.trace) ti.trace(reinterpret_cast<const void*>(e & kAddrMask), tracer);
}

void MarkWorker::drain() {
  Tracer tracer = TracerAccess::make(this);
  // Grey objects pass through a small FIFO between the stack and scanning: each is prefetched
  // when it enters, so its memory is in cache by the time it is scanned (Boehm GC's trick; the
  // scan is otherwise one cache miss per object).
  constexpr uint32_t kAhead = 8;
  uint64_t ring[kAhead];
  uint32_t head = 0, count = 0;
  for (uint32_t k = 1;; ++k) {
    uint64_t e;
    while (count < kAhead && pop(&e)) {
      __builtin_prefetch(reinterpret_cast<const void*>(e & kAddrMask));
      ring[(head + count++) % kAhead] = e;
    }
    if (count) {
      e = ring[head];
      head = (head + 1) % kAhead;
      --count;
      scan_entry(e, tracer);
      if ((k & 63) == 0) balance();
      continue;
    }
    if (pending_n_) {
      shade_pending();
      continue;
    }
    if (WorkBuf* b = g_work.try_get_full()) {
      if (cur_) g_work.put_empty(cur_);
      cur_ = b;
      continue;
    }
    // Idle: wait for published work, or for everyone to be idle.
    g_work.nwait.fetch_add(1, std::memory_order_acq_rel);
    for (int spins = 0;; ++spins) {
      if (g_work.nfull.load(std::memory_order_acquire) > 0) {
        g_work.nwait.fetch_sub(1, std::memory_order_acq_rel);
        if (WorkBuf* b = g_work.try_get_full()) {
          if (cur_) g_work.put_empty(cur_);
          cur_ = b;
          break;
        }
        g_work.nwait.fetch_add(1, std::memory_order_acq_rel);
        continue;
      }
      if (g_work.nwait.load(std::memory_order_acquire) == g_work.nproc) {
        if (cur_) g_work.put_empty(cur_);
        cur_ = nullptr;
        return;
      }
      if (spins < 100) cpu_relax(); else os_yield();
    }
  }
}

int64_t MarkWorker::drain_some(int64_t budget) {
  Tracer tracer = TracerAccess::make(this);
  uint64_t start = scan_work;
  constexpr uint32_t kAhead = 8;
  uint64_t ring[kAhead];
  uint32_t head = 0, count = 0;
  for (uint32_t k = 1;; ++k) {
    uint64_t e;
    while (count < kAhead && pop(&e)) {
      __builtin_prefetch(reinterpret_cast<const void*>(e & kAddrMask));
      ring[(head + count++) % kAhead] = e;
    }
    if (count) {
      e = ring[head];
      head = (head + 1) % kAhead;
      --count;
      scan_entry(e, tracer);
      if ((k & 63) == 0 && cur_) balance();  // workers wait for work: share half of it
      // Out of budget: what is left in the ring goes back to the local buffer.
      if (static_cast<int64_t>(scan_work - start) >= budget) {
        while (count) {
          push(ring[head]);
          head = (head + 1) % kAhead;
          --count;
        }
        shade_pending();
        break;
      }
      continue;
    }
    if (pending_n_) {
      shade_pending();
      continue;
    }
    if (WorkBuf* b = g_work.try_get_full()) {
      if (cur_) g_work.put_empty(cur_);
      cur_ = b;
      continue;
    }
    break;
  }
  return static_cast<int64_t>(scan_work - start);
}

}  // namespace gort::internal

namespace gort::internal {

void mark(Tracer& t, const void* p) {
  static_cast<MarkWorker*>(TracerAccess::worker(t))->mark_field(reinterpret_cast<uintptr_t>(p));
}

void mark_range(Tracer& t, const void* p, size_t n) {
  auto lo = reinterpret_cast<uintptr_t>(p);
  static_cast<MarkWorker*>(TracerAccess::worker(t))->scan_conservative(lo, lo + n);
}

}  // namespace gort::internal
