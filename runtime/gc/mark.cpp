#include "runtime/gc/mark.hpp"

#include <atomic>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/lock.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/thread.hpp"
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

// The shared queue of published buffers and the pool of empty ones.
struct WorkQueue {
  SpinLock lock;
  WorkBuf* full = nullptr;
  WorkBuf* empty = nullptr;
  std::atomic<int> nfull{0};
  std::atomic<int> nwait{0};  // idle participants
  int nproc = 1;              // participants in the current mark phase
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
    LockGuard g(lock);
    b->next = full;
    full = b;
    nfull.fetch_add(1, std::memory_order_release);
  }
  WorkBuf* try_get_full() {
    if (nfull.load(std::memory_order_acquire) == 0) return nullptr;
    LockGuard g(lock);
    WorkBuf* b = full;
    if (b) {
      full = b->next;
      nfull.fetch_sub(1, std::memory_order_relaxed);
    }
    return b;
  }
} g_work;

}  // namespace

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

// marked_bytes may count an object twice when two workers mark it at the same instant (mark
// bytes are set without a locked instruction); it feeds the pacer, never MemStats' exact counts.
void MarkWorker::mark(uintptr_t p) {
  Span* s = last_span_;
  if (!s || p - s->base >= (s->npages << kPageShift)) {
    s = mheap().arenas().span_of_checked(p);
    if (!s) return;
    last_span_ = s;
  }
  uint32_t i = s->object_index(p);
  if (i >= s->nelems || !s->is_allocated(i) || !s->try_mark(i)) return;
  marked_bytes += s->elemsize;
  ++marked_objects;
  if (s->noscan) return;
  uint16_t t = load_type(&s->types[i]);
  if (t == 0 || t == kDestroying) return;
  push(static_cast<uint64_t>(s->object_addr(i)) | (static_cast<uint64_t>(t) << 48));
}

void MarkWorker::scan_conservative(uintptr_t lo, uintptr_t hi) {
  uintptr_t heap_lo = mheap().arenas().lo(), heap_hi = mheap().arenas().hi();
  for (uintptr_t a = round_up(lo, sizeof(uintptr_t)); a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
    uintptr_t w = *reinterpret_cast<const uintptr_t*>(a);
    if (w >= heap_lo && w < heap_hi) mark(w);
  }
}

void MarkWorker::scan_object_contents(Span* s, uint32_t i) {
  if (s->noscan) return;
  uint16_t t = load_type(&s->types[i]);
  if (t == 0 || t == kDestroying) return;
  push(static_cast<uint64_t>(s->object_addr(i)) | (static_cast<uint64_t>(t) << 48));
}

void MarkWorker::balance() {
  if (g_work.nwait.load(std::memory_order_relaxed) == 0 || g_work.nfull.load(std::memory_order_relaxed) != 0 ||
      cur_->n < 2)
    return;
  WorkBuf* b = g_work.get_empty();
  uint64_t half = cur_->n / 2;
  memcpy(b->e, cur_->e, half * sizeof(uint64_t));
  memmove(cur_->e, cur_->e + half, (cur_->n - half) * sizeof(uint64_t));
  b->n = half;
  cur_->n -= half;
  g_work.put_full(b);
}

void MarkWorker::publish() {
  if (cur_ && cur_->n) {
    g_work.put_full(cur_);
    cur_ = nullptr;
  }
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
      const TypeInfo& ti = type_info(static_cast<uint16_t>(e >> 48));
      if (ti.trace) ti.trace(reinterpret_cast<const void*>(e & kAddrMask), tracer);
      if ((k & 63) == 0) balance();
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

}  // namespace gort::internal

namespace gort::internal {

void mark(Tracer& t, const void* p) {
  static_cast<MarkWorker*>(TracerAccess::worker(t))->mark(reinterpret_cast<uintptr_t>(p));
}

void mark_range(Tracer& t, const void* p, size_t n) {
  auto lo = reinterpret_cast<uintptr_t>(p);
  static_cast<MarkWorker*>(TracerAccess::worker(t))->scan_conservative(lo, lo + n);
}

namespace {

// Mark worker threads wait for g_phase to change; g_phase odd means "marking", and the
// special value kShutdown ends them.
std::atomic<uint32_t> g_phase{0};
std::atomic<uint32_t> g_finished{0};
std::atomic<uint64_t> g_cpu_ns{0}, g_bytes{0}, g_objects{0};
constexpr int kMaxWorkers = 256;
pthread_t g_workers[kMaxWorkers];
int g_nworkers = 0;
bool g_shutdown = false;

void* mark_worker_main(void*) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t phase;
    while ((phase = g_phase.load(std::memory_order_acquire)) == seen) futex_wait(&g_phase, seen);
    seen = phase;
    if (g_shutdown) return nullptr;
    uint64_t t0 = thread_cpu_ns();
    MarkWorker w;
    w.drain();
    g_bytes.fetch_add(w.marked_bytes, std::memory_order_relaxed);
    g_objects.fetch_add(w.marked_objects, std::memory_order_relaxed);
    g_cpu_ns.fetch_add(thread_cpu_ns() - t0, std::memory_order_relaxed);
    g_finished.fetch_add(1, std::memory_order_acq_rel);
    futex_wake(&g_finished, 1);
  }
}

}  // namespace

void start_mark_workers(int n) {
  g_shutdown = false;
  g_nworkers = n < kMaxWorkers ? n : kMaxWorkers;
  for (int i = 0; i < g_nworkers; ++i) g_workers[i] = start_service_thread(mark_worker_main, nullptr, "gort-mark");
}

void stop_mark_workers() {
  g_shutdown = true;
  g_phase.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&g_phase);
  for (int i = 0; i < g_nworkers; ++i) join_service_thread(g_workers[i]);
  g_nworkers = 0;
}

MarkResult mark_phase(void (*scan_roots)(MarkWorker&)) {
  uint64_t t0 = thread_cpu_ns();
  MarkWorker w;
  g_work.nproc = 1 + g_nworkers;
  g_work.nwait.store(0, std::memory_order_relaxed);
  g_cpu_ns.store(0, std::memory_order_relaxed);
  g_bytes.store(0, std::memory_order_relaxed);
  g_objects.store(0, std::memory_order_relaxed);
  g_finished.store(0, std::memory_order_relaxed);
  MarkWorker roots;
  scan_roots(roots);
  roots.publish();
  MarkResult r;
  r.marked_bytes = roots.marked_bytes;
  r.marked_objects = roots.marked_objects;
  // Start the workers, then mark alongside them.
  g_phase.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&g_phase);
  w.drain();
  for (uint32_t f; (f = g_finished.load(std::memory_order_acquire)) < static_cast<uint32_t>(g_nworkers);)
    futex_wait(&g_finished, f);
  r.marked_bytes += w.marked_bytes + g_bytes.load(std::memory_order_relaxed);
  r.marked_objects += w.marked_objects + g_objects.load(std::memory_order_relaxed);
  r.worker_cpu_ns = g_cpu_ns.load(std::memory_order_relaxed);
  r.cpu_ns = thread_cpu_ns() - t0 + r.worker_cpu_ns;
  return r;
}

}  // namespace gort::internal
