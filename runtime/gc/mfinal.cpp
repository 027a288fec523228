#include "runtime/gc/mfinal.hpp"

#include <gort/finalizer.hpp>
#include <gort/goroutine.hpp>

#include <bit>
#include <stdexcept>
#include <string>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/queue.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/stats/mprof.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

struct WeakHandle {
  std::atomic<uintptr_t> target;  // the object, or 0 once it was found unreachable
  std::atomic<int> refs;          // Weak<T> copies, plus one while the special exists
};

enum class SpecialKind : uint8_t { Weak, Finalizer, Cleanup, Profile };

struct Special {
  Special* next;
  uintptr_t offset;  // of the object (or tiny object) from the span base
  SpecialKind kind;
  uint64_t id;       // cleanups: what Cleanup::Stop names
  Closure* fn;       // finalizer or cleanup
  WeakHandle* handle;
  ProfileBucket* bucket;  // a heap-profile sample (stats/mprof.hpp)
};

namespace {

struct FinalizerWork {
  void* obj;
  Closure* fn;
};

SpinLock g_lock;  // specials, the list of spans with specials, handle records
Span* g_spans = nullptr;
uint64_t g_next_cleanup_id = 1;
std::atomic<uint64_t> g_unused_inuse{0};
FixAlloc<Special>& special_alloc() {
  static FixAlloc<Special> a(stats().other_sys, g_unused_inuse);
  return a;
}
FixAlloc<WeakHandle>& handle_alloc() {
  static FixAlloc<WeakHandle> a(stats().other_sys, g_unused_inuse);
  return a;
}
// noinline: its guarded static calls libstdc++ (__cxa_guard_acquire), which would make every
// function it is inlined into ask for a 1 MiB stack segment (stack.hpp); inlined into
// finalizer_loop, it made the finalizer goroutine wait on a segment.
__attribute__((noinline)) ChunkQueue<FinalizerWork>& finq() {
  static ChunkQueue<FinalizerWork> q(stats().other_sys);
  return q;
}
std::atomic<size_t> g_running{0};  // finalizers being run right now

using Guard = RuntimeLockGuard<SpinLock>;

// The span holding obj, and obj's offset in it. Throws std::invalid_argument unless obj is the
// start of a managed object or (tiny_ok) inside a tiny block, as Go's SetFinalizer checks.
Span* find_object(const void* obj, bool tiny_ok, const char* who, uintptr_t* offset) {
  auto p = reinterpret_cast<uintptr_t>(obj);
  Span* s = mheap().arenas().span_of_checked(p);
  if (!s) throw std::invalid_argument(std::string(who) + ": pointer is not to a managed object");
  uint32_t i = s->object_index(p);
  if (i >= s->nelems) throw std::invalid_argument(std::string(who) + ": pointer is not to a managed object");
  if (s->object_addr(i) != p && !(tiny_ok && s->sizeclass == kTinySizeClass && s->noscan))
    throw std::invalid_argument(std::string(who) + ": pointer not at beginning of allocated block");
  *offset = p - s->base;
  return s;
}

void link_span(Span* s) {
  s->specials_prev = nullptr;
  s->specials_next = g_spans;
  if (g_spans) g_spans->specials_prev = s;
  g_spans = s;
}
void unlink_span(Span* s) {
  if (s->specials_prev) s->specials_prev->specials_next = s->specials_next; else g_spans = s->specials_next;
  if (s->specials_next) s->specials_next->specials_prev = s->specials_prev;
  s->specials_next = s->specials_prev = nullptr;
}

Special* find_special(Span* s, uintptr_t offset, SpecialKind kind) {
  for (Special* x = s->specials; x && x->offset <= offset; x = x->next)
    if (x->offset == offset && x->kind == kind) return x;
  return nullptr;
}

bool special_before(const Special* a, const Special* b) {
  return a->offset < b->offset || (a->offset == b->offset && a->kind <= b->kind);
}

// Links are changed under g_lock; the head is also read without it, as a hint, by the sweep
// (sweep_span): a relaxed atomic store.
void set_link(Special** link, Special* sp) { std::atomic_ref<Special*>(*link).store(sp, std::memory_order_relaxed); }

void insert_special(Span* s, Special* sp) {
  if (!s->specials) link_span(s);
  Special** link = &s->specials;
  if (s->specials_tail && special_before(s->specials_tail, sp)) link = &s->specials_tail->next;  // append: O(1)
  while (*link && special_before(*link, sp)) link = &(*link)->next;
  sp->next = *link;
  set_link(link, sp);
  if (!sp->next) s->specials_tail = sp;
}

// Unlinks *link (whose predecessor is prev, or none) and frees it.
void unlink_special(Span* s, Special** link, Special* prev) {
  Special* sp = *link;
  set_link(link, sp->next);
  if (s->specials_tail == sp) s->specials_tail = prev;
  special_alloc().destroy(sp);
  if (!s->specials) unlink_span(s);
}

void remove_special(Span* s, Special* sp) {
  Special** link = &s->specials;
  Special* prev = nullptr;
  while (*link != sp) {
    prev = *link;
    link = &(*link)->next;
  }
  unlink_special(s, link, prev);
}

void release_handle_locked(WeakHandle* h) {
  if (h->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) handle_alloc().destroy(h);
}

}  // namespace

void set_finalizer(const void* obj, bool tiny_ok, Closure* fn) {
  Guard g(g_lock);
  uintptr_t off;
  Span* s = find_object(obj, tiny_ok, "gort::SetFinalizer", &off);
  if (find_special(s, off, SpecialKind::Finalizer))
    throw std::invalid_argument("gort::SetFinalizer: finalizer already set");
  // The specials are roots, maybe scanned already in this mark: the barrier's insertion half.
  if (gc_marking()) shade(fn);
  insert_special(s, special_alloc().make(Special{nullptr, off, SpecialKind::Finalizer, 0, fn, nullptr, nullptr}));
}

void clear_finalizer(const void* obj, bool tiny_ok) {
  Guard g(g_lock);
  uintptr_t off;
  Span* s = find_object(obj, tiny_ok, "gort::SetFinalizer", &off);
  if (Special* sp = find_special(s, off, SpecialKind::Finalizer)) remove_special(s, sp);
}

uint64_t add_cleanup(const void* obj, bool tiny_ok, Closure* fn) {
  Guard g(g_lock);
  uintptr_t off;
  Span* s = find_object(obj, tiny_ok, "gort::AddCleanup", &off);
  uint64_t id = g_next_cleanup_id++;
  if (gc_marking()) shade(fn);  // as for a finalizer
  insert_special(s, special_alloc().make(Special{nullptr, off, SpecialKind::Cleanup, id, fn, nullptr, nullptr}));
  return id;
}

void stop_cleanup(uintptr_t hidden_obj, uint64_t id) {
  Guard g(g_lock);
  Span* s = mheap().arenas().span_of_checked(~hidden_obj);
  if (!s) return;
  for (Special* x = s->specials; x; x = x->next) {
    if (x->kind == SpecialKind::Cleanup && x->id == id) {
      remove_special(s, x);
      return;
    }
  }
}

WeakHandle* weak_acquire(const void* obj, bool tiny_ok) {
  Guard g(g_lock);
  uintptr_t off;
  Span* s = find_object(obj, tiny_ok, "gort::Weak", &off);
  if (Special* sp = find_special(s, off, SpecialKind::Weak)) {
    sp->handle->refs.fetch_add(1, std::memory_order_relaxed);
    return sp->handle;
  }
  WeakHandle* h = handle_alloc().make();
  h->target.store(reinterpret_cast<uintptr_t>(obj), std::memory_order_relaxed);
  h->refs.store(2, std::memory_order_relaxed);
  insert_special(s, special_alloc().make(Special{nullptr, off, SpecialKind::Weak, 0, nullptr, h, nullptr}));
  return h;
}

void add_profile_special(const void* obj, ProfileBucket* b) {
  Guard g(g_lock);
  uintptr_t off;
  Span* s = find_object(obj, true, "heap profile", &off);
  insert_special(s, special_alloc().make(Special{nullptr, off, SpecialKind::Profile, 0, nullptr, nullptr, b}));
}

void weak_retain(WeakHandle* h) { h->refs.fetch_add(1, std::memory_order_relaxed); }

void weak_release(WeakHandle* h) {
  Guard g(g_lock);
  release_handle_locked(h);
}

namespace {
// weak_target's reads of a span are speculative: the sweep may meanwhile clear its mark bits,
// free them, free the span and reset or reuse its record; weak_target discards what it read when
// the span's sweepgen moved. A seqlock's reader: like the conservative scan it reads, on purpose,
// what other threads write, and is not instrumented either (core/sanitizer.hpp). Its plain reads
// are made here, with no call (a sanitizer does not inline instrumented code into these).

// The InUse span containing p, a heap address (as ArenaMap::span_of_checked).
GORT_NO_SANITIZE_SCAN Span* speculative_span(uintptr_t p) {
  Span* s = mheap().arenas().span_of(p);
  if (!s || s->state(std::memory_order_acquire) != SpanState::InUse) return nullptr;
  const volatile Span* v = s;
  uintptr_t base = v->base;
  return p >= base && p < base + (v->npages << kPageShift) ? s : nullptr;
}

// Whether p's slot in s is marked.
GORT_NO_SANITIZE_SCAN bool speculative_marked(const Span* s, uintptr_t p) {
  const volatile Span* v = s;
  auto i = static_cast<uint32_t>((static_cast<uint64_t>(p - v->base) * v->divmagic) >> 32);
  const volatile uint8_t* marks = v->markbytes;
  return i < v->nelems && marks && marks[i] != 0;
}
}  // namespace

// The target is cleared when the sweep after a mark finds it unmarked (sweep_specials). Until
// that sweep its object is dead if unmarked: it is read from the mark bit, stable while the span
// waits for its sweep (sweepgen sg-2), and confirmed by reading sweepgen and the target again (a
// sweep that began meanwhile may have cleared the bit; one that ended may have cleared the target
// and freed the span, whose record the first look may then have found reused). A span being
// swept (sg-1) is waited for: one span, inside a critical section. The critical section also
// keeps mark termination (which moves sg) out. A pointer returned is then held by this thread,
// which keeps the object alive from now on. While a mark runs, the target is shaded: this
// thread's stack may have been scanned already (Go's weak.Pointer.Value does the same, and, like
// this, never hands out an object its sweep is about to free).
void* weak_target(WeakHandle* h) {
  CriticalSection cs;
  const uint32_t sg = gc_state().sweepgen.load(std::memory_order_relaxed);
  for (int spins = 0;; ++spins) {
    const auto p = h->target.load(std::memory_order_acquire);
    if (!p) return nullptr;
    Span* s = speculative_span(p);
    const uint32_t span_sg = s ? s->sweepgen.load(std::memory_order_acquire) : sg;
    if (span_sg == sg - 1) {  // being swept: the handle is settled when it ends
      if (spins < 64) cpu_relax(); else os_yield();  // (the background sweeper runs at idle priority)
      continue;
    }
    bool dead = false;
    if (span_sg == sg - 2) {
      dead = !speculative_marked(s, p);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s->sweepgen.load(std::memory_order_relaxed) != span_sg) continue;
    }
    if (h->target.load(std::memory_order_acquire) != p) continue;
    if (dead) return nullptr;  // its sweep will clear the handle
    if (gc_marking()) shade(reinterpret_cast<void*>(p));
    return reinterpret_cast<void*>(p);
  }
}

void mark_special_roots(MarkWorker& w) {
  LockGuard g(g_lock);
  for (Span* s = g_spans; s; s = s->specials_next) {
    for (Special* sp = s->specials; sp; sp = sp->next) {
      if (sp->kind == SpecialKind::Finalizer) w.scan_object_contents(s, s->object_index(s->base + sp->offset));
      if (sp->fn) w.mark(reinterpret_cast<uintptr_t>(sp->fn));
    }
  }
  finq().for_each([&](const FinalizerWork& f) {
    w.mark(reinterpret_cast<uintptr_t>(f.obj));
    w.mark(reinterpret_cast<uintptr_t>(f.fn));
  });
}

uint64_t sweep_specials(Span* s) {
  uint64_t resurrected = 0;
  bool queued = false;
  {
    LockGuard g(g_lock);
    // Slots whose finalizer is due: they are resurrected, and their cleanups wait.
    uint64_t finalizing[Span::kBitWords] = {};
    for (Special* sp = s->specials; sp; sp = sp->next) {
      uint32_t i = s->object_index(s->base + sp->offset);
      if (sp->kind == SpecialKind::Finalizer && !s->is_marked(i)) finalizing[i >> 6] |= uint64_t{1} << (i & 63);
    }
    Special* prev = nullptr;
    for (Special** link = &s->specials; *link;) {
      Special* sp = *link;
      uint32_t i = s->object_index(s->base + sp->offset);
      bool resurrecting = (finalizing[i >> 6] >> (i & 63)) & 1;
      bool remove = false;
      if (!s->is_marked(i)) {
        switch (sp->kind) {
          case SpecialKind::Weak:
            sp->handle->target.store(0, std::memory_order_release);
            release_handle_locked(sp->handle);
            remove = true;
            break;
          case SpecialKind::Finalizer:
            finq().push({reinterpret_cast<void*>(s->base + sp->offset), sp->fn});
            queued = remove = true;
            break;
          case SpecialKind::Cleanup:
            if (resurrecting) break;  // runs once the object dies for good
            finq().push({nullptr, sp->fn});
            queued = remove = true;
            break;
          case SpecialKind::Profile:
            if (resurrecting) break;  // freed once it dies for good
            profile_free(sp->bucket);
            remove = true;
            break;
        }
      }
      if (remove) {
        bool last = sp->next == nullptr && s->specials == sp;
        unlink_special(s, link, prev);
        if (last) break;  // the span left the list of spans with specials
      } else {
        prev = sp;
        link = &sp->next;
      }
    }
    for (int w = 0; w < Span::kBitWords; ++w) {
      for (uint64_t bits = finalizing[w]; bits; bits &= bits - 1) {
        uint32_t i = static_cast<uint32_t>(w * 64 + std::countr_zero(bits));
        s->try_mark(i);
        resurrected += s->elemsize;
      }
    }
  }
  // With the world stopped (finish_sweep, at a cycle's start) the collector wakes it afterwards.
  if (queued && !(world_epoch() & 1)) wake_finalizer();
  return resurrected;
}

size_t pending_finalizers() { return finq().size() + g_running.load(std::memory_order_acquire); }

namespace {
std::atomic<bool> g_stop{false};
std::atomic<uint32_t> g_exited{0};
SpinLock g_wait_lock;           // guards g_waiter
Waiter* g_waiter = nullptr;     // the finalizer goroutine, parked for want of work

// Pops and runs one finalizer or cleanup; false when the queue is empty. Kept out of line so
// that the object and closure live only in this frame: a stale copy must not keep the object
// alive (and its finalizer pending) from the goroutine's stack.
__attribute__((noinline)) bool run_one() {
  FinalizerWork work;
  {
    CriticalSection cs;
    if (!finq().pop(&work)) return false;
    g_running.fetch_add(1, std::memory_order_acq_rel);
    if (gc_marking()) {  // off the queue (a root) onto this stack, maybe scanned already
      shade(work.obj);
      shade(work.fn);
    }
  }
  try {
    work.fn->invoke(work.fn, work.obj);
  } catch (const std::exception& e) {
    fatal("a finalizer or cleanup threw an exception: %s", e.what());
  } catch (...) {
    fatal("a finalizer or cleanup threw an exception");
  }
  // work.obj and work.fn were on this stack until the call returned: both stayed reachable.
  asm volatile("" : : "r"(work.obj), "r"(work.fn) : "memory");
  g_running.fetch_sub(1, std::memory_order_acq_rel);
  return true;
}

// The finalizer goroutine (Go's runfinq): runs queued work in order, parks when there is none.
void finalizer_loop() {
  for (;;) {
    if (run_one()) continue;
    scrub_stack();  // no stale copy of the last object may keep it alive from this stack
    Waiter w;
    init_waiter(w);
    enter_critical();
    g_wait_lock.lock();
    if (g_stop.load(std::memory_order_acquire)) {
      g_wait_lock.unlock();
      leave_critical();
      break;
    }
    if (finq().size() != 0) {  // queued after run_one looked
      g_wait_lock.unlock();
      leave_critical();
      continue;
    }
    g_waiter = &w;
    park(w, g_wait_lock);
  }
  g_exited.store(1, std::memory_order_release);
  futex_wake(&g_exited);
}
}  // namespace

void wake_finalizer() {
  RuntimeLockGuard<SpinLock> g(g_wait_lock);
  if (Waiter* w = std::exchange(g_waiter, nullptr)) ready(*w);
}

void start_finalizer_thread() {
  g_stop.store(false);
  g_exited.store(0);
  spawn_goroutine(make<GoClosure<void (*)()>>(&finalizer_loop), /*system=*/true);
}

void stop_finalizer_thread() {
  g_stop.store(true);
  wake_finalizer();
  // A finalizer may be blocked for good (it may wait on anything); do not wait for it forever.
  for (int i = 0; i < 100 && !g_exited.load(std::memory_order_acquire); ++i) futex_wait(&g_exited, 0, 10000000);
}

}  // namespace gort::internal
