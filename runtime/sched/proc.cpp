#include "runtime/sched/proc.hpp"

#include <gort/goroutine.hpp>

#include <boost/context/detail/fcontext.hpp>
#include <cxxabi.h>
#include <sched.h>
#include <signal.h>
#include <unwind.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <cstring>
#include <mutex>

#include "runtime/core/mem.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/panic.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/regs.hpp"
#include "runtime/core/sanitizer.hpp"
#include "runtime/core/symbolize.hpp"
#include "runtime/core/signalcall.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/sched/preempt.hpp"
#include "runtime/sched/segments.hpp"
#include "runtime/sched/stack.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace bctx = boost::context::detail;

enum class GStatus : uint32_t { Idle, Runnable, Running, Waiting, Dead };

struct G {
  G* schedlink = nullptr;  // run queues, free list
  G* allnext = nullptr;    // every goroutine ever made (for the collector), never unlinked
  bctx::fcontext_t ctx = nullptr;
  Stack stack;
  StackContext split;      // split stacks: libgcc's state of this stack while it is switched out
  GoClosureBase* fn = nullptr;
  std::atomic<GStatus> status{GStatus::Idle};
  // Concurrent marking (gc/mgcmark.cpp): the cycle in which this stack was last scanned, a lock a
  // mark worker holds while it scans the stack in place (execute waits for it), and the M that
  // runs the goroutine (valid while status is Running).
  std::atomic<uint32_t> scan_gen{0};
  std::atomic<uint32_t> scan_lock{0};
  struct M* m = nullptr;
  // Nested blocking() calls: only the outermost hands the P over. Its goroutine alone writes it;
  // goroutine dumps read it (relaxed atomic accesses).
  int blocking_depth = 0;
  bool system = false;     // the runtime's own (the finalizer goroutine): not in NumGoroutine
  // Split stacks: how many more runs with no spare get a segment lent (segments.hpp): reset when
  // the goroutine switches out having run on one, counted down by each switch without. Kept when
  // the G is reused.
  uint8_t segment_hint = 0;
  int64_t id = 0;          // Go's goroutine id: 1, 2, ... in order of creation (0: the runtime's own)
  const char* wait_reason = "";  // while parked
  // Called by the scheduler once the goroutine is parked: releases the wait queue's lock(s).
  void (*park_unlock)(void*) = nullptr;
  void* park_arg = nullptr;
  // The C++ runtime's exception-handling state while the goroutine is switched out (EhGlobals).
  void* eh_caught = nullptr;
  unsigned eh_uncaught = 0;
  SanitizerFiber san;      // sanitizer builds: this goroutine's stack as they see it (sanitizer.hpp)
};

// The Itanium C++ ABI's per-thread exception state (__cxa_get_globals(): libstdc++'s and
// libc++abi's __cxa_eh_globals start so): the stack of exceptions being handled, which catch
// blocks push and pop, and the count std::uncaught_exceptions() reports. It belongs to whatever
// runs on the thread, so it is switched with goroutines: a goroutine that parks inside a catch
// block and resumes on another thread, or after another goroutine caught an exception on this
// one, must find its own exception there (else __cxa_end_catch would destroy another goroutine's,
// and std::current_exception() and `throw;` would see it).
struct EhGlobals {
  void* caught;
  unsigned uncaught;
};

constexpr int kRunQueueSize = 256;
constexpr int kMaxDumpFrames = 64;  // per goroutine in a dump (Go prints up to 100)
constexpr int kMaxProcs = 256;

struct Timer {
  int64_t when;
  Waiter* w;
};

struct P {
  int id = 0;
  bool live = false;               // id < GOMAXPROCS
  bool owned = false;              // held by an M (taken from the idle list, not yet given back)
  P* link = nullptr;               // idle list
  uint32_t schedtick = 0;
  // Read by other Ms that look for work (a spinning one polls them): on lines of their own, not
  // shared with what the owner writes at every schedule (schedtick) or with another P.
  alignas(64) std::atomic<uint32_t> runqhead{0};
  std::atomic<uint32_t> runqtail{0};
  std::atomic<G*> runq[kRunQueueSize];
  alignas(64) std::atomic<G*> runnext{nullptr};
  alignas(64) SpinLock timers_lock;
  Timer* timers = nullptr;         // binary min-heap on `when`
  int ntimers = 0, timers_cap = 0;
  std::atomic<int64_t> next_timer{INT64_MAX};  // timers[0].when, readable without the lock
  G* gfree = nullptr;              // finished goroutines, for reuse (owner only)
  int ngfree = 0;
  Stack stacks[32];                // stacks of finished goroutines, for the next to start here
  int nstacks = 0;
  SegmentCache segments;           // idle stack segments (segments.hpp)
};

enum class After { None, Park, Yield, Exit, Blocking };

struct M {
  M* link = nullptr;               // idle list
  pthread_t thread{};
  ThreadRecord* rec = nullptr;
  bctx::fcontext_t g0 = nullptr;   // the scheduler loop's context while a goroutine runs
  StackContext split;              // split stacks: the M's own (guard 0: never grows)
  void* const* current_segment = nullptr;  // split stacks: libgcc's thread-local, for sysmon
  EhGlobals* eh = nullptr;         // this thread's exception state (__cxa_get_globals)
  G* curg = nullptr;
  P* p = nullptr;
  P* next_p = nullptr;             // handed over by whoever wakes this M
  std::atomic<uint32_t> wake{0};
  std::atomic<uint32_t> exited{0};
  bool spinning = false;
  bool spun = false;               // this look for work already spun once
  After after = After::None;       // what the goroutine asked for when it switched back
  // Preemption (preempt.hpp): how many times execute() has started a goroutine on this M, and
  // sysmon's own note of the last value it saw and since when.
  std::atomic<uint64_t> schedseq{0};
  uint64_t seen_schedseq = 0;
  int64_t seen_since = 0;
  SanitizerFiber san;              // sanitizer builds: the scheduler's side (its thread's stack)
};

namespace {

struct Sched {
  SpinLock lock;                   // global run queue, idle lists
  G* runq_head = nullptr;
  G* runq_tail = nullptr;
  std::atomic<int> runq_size{0};  // changed under the lock, read without it
  P* idle_p = nullptr;
  std::atomic<int> npidle{0};  // read without the lock by wakep's quick check
  M* idle_m = nullptr;
  std::atomic<int> nmspinning{0};
  int gomaxprocs = 0;
  P* allp[kMaxProcs] = {};
  std::atomic<bool> shutdown{false};
  M* allm[1024] = {};
  int nm = 0;

  SpinLock g_lock;                 // allg and the free G list
  G* allg = nullptr;
  G* free_g = nullptr;
  std::atomic<int64_t> ngoroutines{0};
  bool main_is_goroutine = false;
  std::atomic<int64_t> next_goid{1};

  // The deadlock check (check_dead): goroutines inside blocking(), program threads parked in
  // gort waits (counted by the parker, uncounted by the waker, so a woken thread never looks
  // parked), and a count of wake-ups that shows whether anything happened between two checks.
  std::atomic<int> nblocking{0};
  std::atomic<int> parked_threads{0};
  std::atomic<uint64_t> progress{0};
  PersistentAlloc records{stats().other_sys};
} g_sched;

thread_local M* t_m __attribute__((tls_model("initial-exec"))) = nullptr;

// After a switch the code may run on another OS thread: thread-locals must be read afresh, never
// from an address computed before the switch. These out-of-line accessors guarantee it.
__attribute__((noinline)) M* current_m() { return t_m; }
__attribute__((noinline)) void leave_critical_after_switch() { leave_critical(); }

// M::curg and M::p belong to their M, and sysmon reads them without a lock (a relaxed
// std::atomic_ref load): their M writes them with a relaxed store, as their M alone does.
template <class T>
inline void set_watched(T*& field, T* value) {
  std::atomic_ref<T*>(field).store(value, std::memory_order_relaxed);
}

// ---- run queues (Go's runqput / runqget / runqsteal) -------------------------------------

void global_put_locked(G* g) {
  g->schedlink = nullptr;
  if (g_sched.runq_tail) g_sched.runq_tail->schedlink = g; else g_sched.runq_head = g;
  g_sched.runq_tail = g;
  g_sched.runq_size.fetch_add(1, std::memory_order_relaxed);
}

G* global_get_locked() {
  G* g = g_sched.runq_head;
  if (g) {
    g_sched.runq_head = g->schedlink;
    if (!g_sched.runq_head) g_sched.runq_tail = nullptr;
    g_sched.runq_size.fetch_sub(1, std::memory_order_relaxed);
  }
  return g;
}

G* global_get() {
  LockGuard lk(g_sched.lock);
  return global_get_locked();
}

// Puts g on p's local queue (or runnext); overflow moves half the queue to the global queue.
void runq_put(P* p, G* g, bool next) {
  if (next) {
    g = p->runnext.exchange(g, std::memory_order_seq_cst);  // also make_runnable's barrier
    if (!g) return;  // the old runnext, if any, goes to the queue
  }
  for (;;) {
    uint32_t h = p->runqhead.load(std::memory_order_acquire);
    uint32_t t = p->runqtail.load(std::memory_order_relaxed);
    if (t - h < kRunQueueSize) {
      p->runq[t % kRunQueueSize].store(g, std::memory_order_relaxed);
      p->runqtail.store(t + 1, std::memory_order_release);
      return;
    }
    // Full: move half of it and g to the global queue.
    G* batch[kRunQueueSize / 2 + 1];
    uint32_t n = (t - h) / 2;
    for (uint32_t i = 0; i < n; ++i) batch[i] = p->runq[(h + i) % kRunQueueSize].load(std::memory_order_relaxed);
    if (!p->runqhead.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) continue;
    batch[n] = g;
    LockGuard lk(g_sched.lock);
    for (uint32_t i = 0; i <= n; ++i) global_put_locked(batch[i]);
    return;
  }
}

G* runq_get(P* p) {
  if (G* g = p->runnext.load(std::memory_order_relaxed)) {
    if (p->runnext.compare_exchange_strong(g, nullptr, std::memory_order_acq_rel)) return g;
  }
  for (;;) {
    uint32_t h = p->runqhead.load(std::memory_order_acquire);
    uint32_t t = p->runqtail.load(std::memory_order_relaxed);
    if (t == h) return nullptr;
    G* g = p->runq[h % kRunQueueSize].load(std::memory_order_relaxed);
    if (p->runqhead.compare_exchange_strong(h, h + 1, std::memory_order_acq_rel)) return g;
  }
}

bool runq_queue_empty(P* p) {
  return p->runqhead.load(std::memory_order_acquire) == p->runqtail.load(std::memory_order_acquire);
}
bool runq_empty(P* p) { return runq_queue_empty(p) && !p->runnext.load(std::memory_order_acquire); }

// Steals half of victim's queue into p's; returns one goroutine to run now.
G* runq_steal(P* p, P* victim, bool steal_runnext) {
  for (;;) {
    uint32_t h = victim->runqhead.load(std::memory_order_acquire);
    uint32_t t = victim->runqtail.load(std::memory_order_acquire);
    uint32_t n = t - h;
    n -= n / 2;
    if (n == 0 || n > kRunQueueSize / 2) {
      if (n == 0) {
        // Take runnext too, as Go does when the victim has nothing else, but only on the last
        // pass: a goroutine just readied by a channel hand-off is about to run on its own P, and
        // moving it to another thread costs more than the short wait (Go sleeps 3 us first).
        if (!steal_runnext) return nullptr;
        G* g = victim->runnext.load(std::memory_order_acquire);
        if (g && victim->runnext.compare_exchange_strong(g, nullptr, std::memory_order_acq_rel)) return g;
        return nullptr;
      }
      continue;  // inconsistent read
    }
    G* batch[kRunQueueSize / 2];
    for (uint32_t i = 0; i < n; ++i) batch[i] = victim->runq[(h + i) % kRunQueueSize].load(std::memory_order_relaxed);
    if (!victim->runqhead.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) continue;
    for (uint32_t i = 1; i < n; ++i) runq_put(p, batch[i], false);
    return batch[0];
  }
}

// ---- timers (per-P heaps) ------------------------------------------------------------------

void timer_push_locked(P* p, Timer t) {
  if (p->ntimers == p->timers_cap) {
    int cap = p->timers_cap ? p->timers_cap * 2 : 64;
    auto* grown = static_cast<Timer*>(g_sched.records.alloc(sizeof(Timer) * static_cast<size_t>(cap)));
    if (p->ntimers) mem_copy(grown, p->timers, sizeof(Timer) * static_cast<size_t>(p->ntimers));
    p->timers = grown;  // the old array is not reused: timers memory only grows, like Go's
    p->timers_cap = cap;
  }
  int i = p->ntimers++;
  while (i > 0 && p->timers[(i - 1) / 2].when > t.when) {
    p->timers[i] = p->timers[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  p->timers[i] = t;
}

Timer timer_pop_locked(P* p) {
  Timer top = p->timers[0];
  Timer last = p->timers[--p->ntimers];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= p->ntimers) break;
    if (c + 1 < p->ntimers && p->timers[c + 1].when < p->timers[c].when) ++c;
    if (p->timers[c].when >= last.when) break;
    p->timers[i] = p->timers[c];
    i = c;
  }
  if (p->ntimers) p->timers[i] = last;
  return top;
}

// Readies every expired timer of p; returns the next deadline (INT64_MAX: none).
int64_t run_timers(P* p) {
  if (p->next_timer.load(std::memory_order_acquire) == INT64_MAX) return INT64_MAX;  // the common case: no clock read
  int64_t now = static_cast<int64_t>(nanotime());
  for (;;) {
    Waiter* due = nullptr;
    int64_t next = INT64_MAX;
    {
      LockGuard g(p->timers_lock);
      if (p->ntimers && p->timers[0].when <= now) due = timer_pop_locked(p).w;
      else if (p->ntimers) next = p->timers[0].when;
      p->next_timer.store(p->ntimers ? p->timers[0].when : INT64_MAX, std::memory_order_release);
    }
    if (!due) return next;
    ready(*due);
  }
}

// ---- Ms and Ps -------------------------------------------------------------------------------

P* pidle_get_locked() {
  P* p = g_sched.idle_p;
  if (p) {
    g_sched.idle_p = p->link;
    --g_sched.npidle;
    p->owned = true;
  }
  return p;
}
void pidle_put_locked(P* p) {
  p->owned = false;
  p->link = g_sched.idle_p;
  g_sched.idle_p = p;
  ++g_sched.npidle;
}

void* m_main(void* arg);

__attribute__((noinline)) M* new_m() {  // rare, and calls libc: kept out of start_m's body
  M* m = new (g_sched.records.alloc(sizeof(M), alignof(M))) M;
  {
    LockGuard g(g_sched.lock);
    if (g_sched.nm == static_cast<int>(sizeof g_sched.allm / sizeof g_sched.allm[0])) fatal("too many threads");
    g_sched.allm[g_sched.nm++] = m;
  }
  m->thread = start_service_thread(m_main, m, "gort-m");
  return m;
}

// Gives p to an idle M (or a new one), to run goroutines; `spinning` if it must look for work
// (the caller has counted it in nmspinning).
void start_m(P* p, bool spinning) noexcept {
  M* m;
  {
    LockGuard g(g_sched.lock);
    m = g_sched.idle_m;
    if (m) g_sched.idle_m = m->link;
  }
  if (!m) {  // takes next_p below before it looks: it waits for `wake`
    on_system_stack([](void* out) noexcept { *static_cast<M**>(out) = new_m(); }, &m);
  }
  m->spinning = spinning;
  m->next_p = p;
  m->wake.store(1, std::memory_order_release);
  futex_wake(&m->wake, 1);
}

// Wakes an M to run an idle P, if there is one and no M is already looking for work.
void wakep() noexcept {
  if (g_sched.npidle == 0 || g_sched.nmspinning.load(std::memory_order_acquire) != 0) return;
  P* p;
  {
    LockGuard g(g_sched.lock);
    if (g_sched.nmspinning.load(std::memory_order_acquire) != 0) return;
    p = pidle_get_locked();
    if (!p) return;
    g_sched.nmspinning.fetch_add(1, std::memory_order_acq_rel);  // under the lock: one spinner at a time
  }
  start_m(p, true);
}

void make_runnable(G* g, bool next) {
  g->status.store(GStatus::Runnable, std::memory_order_release);
  g_sched.progress.fetch_add(1, std::memory_order_relaxed);
  M* m = current_m();
  if (m && m->p) {
    runq_put(m->p, g, next);
  } else {
    LockGuard lk(g_sched.lock);
    global_put_locked(g);
  }
  // Store-load barrier, paired with the one in find_runnable: either this wakep sees the M that
  // is going to sleep as gone (no spinner: it wakes one), or that M's last look sees this work.
  // Putting g in runnext was a seq_cst exchange, a barrier already (the hot channel hand-off).
  if (!(m && m->p && next)) std::atomic_thread_fence(std::memory_order_seq_cst);
  wakep();
}

G* find_runnable(M* m);
void goroutine_entry(bctx::transfer_t t);

// Finished goroutines wait on their P's free list (Go's gfput/gfget), and their stacks in the
// P's stack cache: a new goroutine then costs no lock and no stack allocation. A queued goroutine
// holds no stack (it gets one when it first runs), so the cache never pins stacks to the queue.
constexpr int kMaxLocalFreeG = 64;

// A finished goroutine's stack holds no segment: it gave its spares to the pool when it
// switched out (execute).
void gfree_put(P* p, G* g) {
  if (p && p->nstacks < static_cast<int>(sizeof p->stacks / sizeof p->stacks[0]))
    p->stacks[p->nstacks++] = g->stack;
  else stack_free(g->stack);
  g->stack = {};
  if (!p) {
    LockGuard lk(g_sched.g_lock);
    g->schedlink = g_sched.free_g;
    g_sched.free_g = g;
    return;
  }
  g->schedlink = p->gfree;
  p->gfree = g;
  if (++p->ngfree <= kMaxLocalFreeG) return;
  // Too many here: half go to the global list, in one batch.
  LockGuard lk(g_sched.g_lock);
  while (p->ngfree > kMaxLocalFreeG / 2) {
    G* x = p->gfree;
    p->gfree = x->schedlink;
    --p->ngfree;
    x->schedlink = g_sched.free_g;
    g_sched.free_g = x;
  }
}

G* gfree_get(P* p) {
  if (p && !p->gfree) {
    // Refill from the global list in one batch.
    LockGuard lk(g_sched.g_lock);
    while (p->ngfree < kMaxLocalFreeG / 2 && g_sched.free_g) {
      G* x = g_sched.free_g;
      g_sched.free_g = x->schedlink;
      x->schedlink = p->gfree;
      p->gfree = x;
      ++p->ngfree;
    }
  }
  if (p && p->gfree) {
    G* g = p->gfree;
    p->gfree = g->schedlink;
    --p->ngfree;
    return g;
  }
  if (p) return nullptr;
  LockGuard lk(g_sched.g_lock);
  G* g = g_sched.free_g;
  if (g) g_sched.free_g = g->schedlink;
  return g;
}

Stack stack_get(P* p) {
  if (p && p->nstacks) return p->stacks[--p->nstacks];
  return stack_alloc();
}

// The two halves of every switch. With split stacks libgcc's thread-local state is swapped for
// the other side's right before the jump; no split-stack prologue may run in between (it would
// compare this stack's pointer with the other stack's guard), hence no_split_stack and nothing
// but the swap and the jump. The side that resumes finds its own state installed by the other.
// noinline: inlined, the jump_fcontext call (Boost.Context is not built with split stacks) would
// make the caller ask for a 1 MiB segment.
GORT_NO_SPLIT __attribute__((noinline)) bctx::transfer_t jump_to_goroutine(M* m, G* g);
GORT_NO_SPLIT __attribute__((noinline)) bctx::transfer_t jump_to_scheduler(M* m);

// The caller-saved registers are dead across a switch, and the side that resumes would inherit
// them from the other: a goroutine, the scheduler's leftovers (the first object of a span a
// refill just handed out, say); the scheduler, a goroutine's. Cleared at every switch
// (core/regs.hpp).
bctx::transfer_t jump_to_goroutine(M* m, G* g) {
#if GORT_SPLIT_STACK
  stack_context_install(g->split);
#endif
  clear_scratch_registers();
  return bctx::jump_fcontext(g->ctx, m);
}

bctx::transfer_t jump_to_scheduler(M* m) {
#if GORT_SPLIT_STACK
  stack_context_save_running(m->curg->split);
  stack_context_install(m->split);
#endif
  clear_scratch_registers();
  return bctx::jump_fcontext(m->g0, nullptr);
}

// gort_call_on_stack(fn, arg, sp): calls fn(arg) with the stack pointer at sp (16-byte aligned),
// then returns on the caller's stack. The frame pointer holds the way back, so debuggers and
// unwinders can walk through it.
#if defined(__x86_64__)
extern "C" void gort_call_on_stack(void (*fn)(void*) noexcept, void* arg, uintptr_t sp) noexcept;
asm(R"(
  .text
  .p2align 4
  .globl gort_call_on_stack
  .hidden gort_call_on_stack
  .type gort_call_on_stack, @function
gort_call_on_stack:
  .cfi_startproc
  pushq %rbp
  .cfi_def_cfa_offset 16
  .cfi_offset %rbp, -16
  movq %rsp, %rbp
  .cfi_def_cfa_register %rbp
  movq %rdx, %rsp
  movq %rdi, %rax
  movq %rsi, %rdi
  callq *%rax
  movq %rbp, %rsp
  popq %rbp
  .cfi_def_cfa %rsp, 8
  ret
  .cfi_endproc
  .size gort_call_on_stack, .-gort_call_on_stack
)");
#endif

// gort_unwind_parked(fn, arg, ctx): calls fn(arg) under call frame information that makes an
// unwinder started in fn continue, past this frame, into the goroutine parked at ctx: a context
// boost's jump_fcontext saved, which holds r12, r13, r14, r15, rbx, rbp at ctx+8..ctx+0x30 and
// the return address into the goroutine at ctx+0x38; the goroutine's stack pointer is ctx+0x40
// once it resumes. For goroutine dumps: libgcc's unwinder walks only the calling thread's stack.
#if defined(__x86_64__)
extern "C" void gort_unwind_parked(void (*fn)(void*) noexcept, void* arg, void* ctx) noexcept;
asm(R"(
  .text
  .p2align 4
  .globl gort_unwind_parked
  .hidden gort_unwind_parked
  .type gort_unwind_parked, @function
gort_unwind_parked:
  .cfi_startproc
  pushq %r12
  .cfi_def_cfa_offset 16
  .cfi_offset %r12, -16
  leaq 0x40(%rdx), %r12
  movq %rdi, %rax
  movq %rsi, %rdi
  .cfi_remember_state
  .cfi_def_cfa %r12, 0
  .cfi_offset 16, -8
  .cfi_offset %rbp, -16
  .cfi_offset %rbx, -24
  .cfi_offset %r15, -32
  .cfi_offset %r14, -40
  .cfi_offset %r13, -48
  .cfi_offset %r12, -56
  callq *%rax
  .cfi_restore_state
  popq %r12
  .cfi_def_cfa_offset 8
  ret
  .cfi_endproc
  .size gort_unwind_parked, .-gort_unwind_parked
)");
#endif

// gort_unwind_stopped(fn, arg, regs): the same for a thread stopped by a signal, from the
// registers its stop saved (StoppedRegs, filled from the signal context): the call frame
// information says this frame's caller runs at regs->rip with the stack pointer regs->rsp and its
// callee-saved registers in regs (DWARF expressions based on r12, which holds regs; escapes:
// DW_CFA_def_cfa_expression [DW_OP_breg12 0, DW_OP_deref], DW_CFA_expression REG [DW_OP_breg12
// OFFSET]). A signal frame: rip is where the thread was interrupted, not a return address.
struct StoppedRegs {
  uintptr_t rsp, rip, rbp, rbx, r12, r13, r14, r15;
};
#if defined(__x86_64__)
extern "C" void gort_unwind_stopped(void (*fn)(void*) noexcept, void* arg, const StoppedRegs* regs) noexcept;
asm(R"(
  .text
  .p2align 4
  .globl gort_unwind_stopped
  .hidden gort_unwind_stopped
  .type gort_unwind_stopped, @function
gort_unwind_stopped:
  .cfi_startproc
  .cfi_signal_frame
  pushq %r12
  .cfi_def_cfa_offset 16
  .cfi_offset %r12, -16
  movq %rdx, %r12
  movq %rdi, %rax
  movq %rsi, %rdi
  .cfi_remember_state
  .cfi_escape 0x0f, 0x03, 0x7c, 0x00, 0x06
  .cfi_escape 0x10, 0x10, 0x02, 0x7c, 0x08
  .cfi_escape 0x10, 0x06, 0x02, 0x7c, 0x10
  .cfi_escape 0x10, 0x03, 0x02, 0x7c, 0x18
  .cfi_escape 0x10, 0x0c, 0x02, 0x7c, 0x20
  .cfi_escape 0x10, 0x0d, 0x02, 0x7c, 0x28
  .cfi_escape 0x10, 0x0e, 0x02, 0x7c, 0x30
  .cfi_escape 0x10, 0x0f, 0x02, 0x7c, 0x38
  callq *%rax
  .cfi_restore_state
  popq %r12
  .cfi_def_cfa_offset 8
  ret
  .cfi_endproc
  .size gort_unwind_stopped, .-gort_unwind_stopped
)");
#endif

// Walks of parked goroutines' stacks in progress (for_each_goroutine): while any runs, execute
// takes the handshake with scan_lock that it otherwise takes only while marking. A walk's end is
// a release and execute's look an acquire: an execute that finds the count back at 0 comes after
// the walk's reads of the goroutine it starts (a first run writes g->ctx, which the walk read;
// TSan, ci49: the walk ended, the count read 0 relaxed, and nothing ordered the two).
std::atomic<int> g_stack_walks{0};

// Runs g on this M until it switches back; then does what it asked for.
void execute(M* m, G* g) {
  enter_critical();
  bool first_run = !g->ctx;
  set_watched(m->curg, g);
  __atomic_store_n(&g->m, m, __ATOMIC_RELAXED);  // goroutine_thread reads it racing
  if (gc_marking() || g_stack_walks.load(std::memory_order_acquire)) [[unlikely]] {
    // A mark worker may be scanning g's stack in place, or a goroutine dump walking it: wait
    // until it is done. Dekker's protocol with scan_parked_goroutine and
    // parked_goroutine_stack: each side stores its flag, then reads the other's.
    for (;;) {
      g->status.store(GStatus::Running, std::memory_order_seq_cst);
      if (!g->scan_lock.load(std::memory_order_seq_cst)) break;
      g->status.store(GStatus::Runnable, std::memory_order_seq_cst);
      while (g->scan_lock.load(std::memory_order_acquire)) cpu_relax();
    }
  } else {
    g->status.store(GStatus::Running, std::memory_order_relaxed);
  }
  // Only now, Running: a mark worker reads a parked (or queued) goroutine's ctx and stack.
  if (first_run) {
    g->stack = stack_get(m->p);
    stack_context_init(g->split, g->stack);
    // Checkmark (gc/mgcmark.hpp): a goroutine started during a mark counts as scanned, so its
    // stack may not carry a finished goroutine's words into its own uninitialized slots.
    if (checkmark_scrubs_stacks()) [[unlikely]] stack_scrub_all(g->stack);
    g->ctx = bctx::make_fcontext(reinterpret_cast<void*>(g->stack.hi), kStackSize, goroutine_entry);
    sanitizer_fiber_create(g->san, reinterpret_cast<void*>(g->stack.lo), kStackSize);
  }
  // Split stacks: a segment for it to grow into, from the pool (segments.hpp).
  if (kSplitStacks && !g->split.segments() && m->p && (g->segment_hint || (first_run && m->p->segments.n)))
    segments_lend(g->stack, g->split, &m->p->segments, g->segment_hint != 0);
  m->rec->g_stack_lo = g->stack.lo;
  m->rec->g_stack_hi = g->stack.hi;
  t_local.stack_scan_gen = &g->scan_gen;
  m->schedseq.store(m->schedseq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  m->eh->caught = g->eh_caught;
  m->eh->uncaught = g->eh_uncaught;
  sanitizer_start_switch(&m->san, g->san);
  bctx::transfer_t t = jump_to_goroutine(m, g);
  // Back on this M's own stack.
  sanitizer_finish_switch(m->san, nullptr);
  g->eh_caught = std::exchange(m->eh->caught, nullptr);
  g->eh_uncaught = std::exchange(m->eh->uncaught, 0u);
  g->ctx = t.fctx;
  // On its first stack, its spares go to the pool while g is still Running (no scanner reads it);
  // on a segment, they are noted in StackInuse.
  if (g->split.segments() && !g->split.current()) {
    if (segments_take_spares(g->stack, g->split, m->p ? &m->p->segments : nullptr)) g->segment_hint = kSegmentHint;
    else if (g->segment_hint) --g->segment_hint;
  }
  stack_note_segments(g->stack, g->split.segments());
  set_watched(m->curg, static_cast<G*>(nullptr));
  m->rec->g_stack_lo = m->rec->g_stack_hi = 0;
  t_local.stack_scan_gen = &m->rec->scan_gen;
  switch (m->after) {
    case After::Park:
      g->status.store(GStatus::Waiting, std::memory_order_release);
      if (auto unlock = std::exchange(g->park_unlock, nullptr)) unlock(g->park_arg);
      break;
    case After::Yield: {
      g->status.store(GStatus::Runnable, std::memory_order_release);
      LockGuard lk(g_sched.lock);
      global_put_locked(g);
      break;
    }
    case After::Exit:
      sanitizer_fiber_destroy(g->san);
      g->ctx = nullptr;
      g->fn = nullptr;
      g->status.store(GStatus::Dead, std::memory_order_release);
      gfree_put(m->p, g);
      break;
    case After::Blocking:  // exit_blocking found no P: run it when one is free
    case After::None: {
      g->status.store(GStatus::Runnable, std::memory_order_release);
      {
        LockGuard lk(g_sched.lock);
        global_put_locked(g);
      }
      std::atomic_thread_fence(std::memory_order_seq_cst);  // as in make_runnable
      wakep();  // a P may have gone idle since exit_blocking looked
      break;
    }
  }
  m->after = After::None;
  leave_critical();
}

// The goroutine side of a switch to the scheduler: the caller is in exactly one critical section,
// which the scheduler loop leaves; when the goroutine runs again (on whatever M), it is in one
// critical section of that M, which the caller leaves.
__attribute__((noinline)) void switch_to_scheduler(After why) {
  M* m = current_m();
  m->after = why;
  sanitizer_start_switch(why == After::Exit ? nullptr : &m->curg->san, m->san);
  bctx::transfer_t t = jump_to_scheduler(m);
  M* now = static_cast<M*>(t.data);
  sanitizer_finish_switch(now->curg->san, &now->san);
  now->g0 = t.fctx;
  now->rec->g0_sp = reinterpret_cast<uintptr_t>(t.fctx);
}

void goroutine_entry(bctx::transfer_t t) {
  M* m = static_cast<M*>(t.data);
  m->g0 = t.fctx;
  m->rec->g0_sp = reinterpret_cast<uintptr_t>(t.fctx);
  G* g = m->curg;
  sanitizer_finish_switch(g->san, &m->san);
  leave_critical_after_switch();
  g->fn->invoke(g->fn);
  if (!g->system) g_sched.ngoroutines.fetch_sub(1, std::memory_order_relaxed);
  enter_critical();
  switch_to_scheduler(After::Exit);
  fatal("a finished goroutine was resumed");
}

// ---- stack overflow: a clear message instead of a bare SIGSEGV --------------------------------

struct sigaction g_prev_segv;

// Runs on the M's alternate signal stack: a goroutine that ran off its stack has none left.
void segv(int sig, siginfo_t* info, void* uctx) {
  ThreadRecord* r = t_local.record;
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (r && r->g_stack_hi && addr < r->g_stack_lo && addr + 64 * 1024 >= r->g_stack_lo) {
#if GORT_SPLIT_STACK
    static const char msg[] =
        "gort: fatal error: goroutine stack overflow: code built without -fsplit-stack ran off a goroutine's "
        "8 KiB first stack (compile everything that runs on goroutines with the flags in gort.pc)\n";
#else
    static const char msg[] =
        "gort: fatal error: goroutine stack overflow (this build gives goroutines fixed 64 KiB stacks; "
        "-Dstacks=split grows them)\n";
#endif
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    abort();
  }
  // Not ours: hand it to whoever handled SIGSEGV before, or crash as usual.
  if (g_prev_segv.sa_flags & SA_SIGINFO) {
    if (g_prev_segv.sa_sigaction) return g_prev_segv.sa_sigaction(sig, info, uctx);
  } else if (g_prev_segv.sa_handler != SIG_DFL && g_prev_segv.sa_handler != SIG_IGN) {
    return g_prev_segv.sa_handler(sig);
  }
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
}

GORT_NO_SPLIT void segv_handler(int sig, siginfo_t* info, void* uctx);
void segv_handler(int sig, siginfo_t* info, void* uctx) {
  [[maybe_unused]] SignalStackGuard on_alt_stack;
  segv(sig, info, uctx);
}

void install_overflow_handler() {
  static std::once_flag once;
  std::call_once(once, [] { install_signal_handler(SIGSEGV, segv_handler, SA_ONSTACK, &g_prev_segv); });
}

constexpr size_t kAltStackSize = 64 << 10;

void* m_main(void* arg) {
  M* m = static_cast<M*>(arg);
  t_m = m;
#if GORT_SPLIT_STACK
  __splitstack_getcontext(m->split.words);  // a service thread: guard 0, no segments
#endif
  m->current_segment = stack_current_segment_slot();
  m->eh = reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
  sanitizer_fiber_of_thread(m->san);
  // An alternate signal stack, so that a goroutine's stack overflow can still be reported.
  stack_t alt{};
  alt.ss_sp = sys_alloc(kAltStackSize, stats().stack_sys);
  alt.ss_size = kAltStackSize;
  sigaltstack(&alt, nullptr);
  t_local.alt_signal_stack = true;
  install_overflow_handler();
  attach_current_thread(/*scan_stack=*/true, /*program=*/false);
  m->rec = t_local.record;
  m->rec->m = m;
  for (;;) {
    blocked_wait([m] {
      while (!m->wake.load(std::memory_order_acquire)) futex_wait(&m->wake, 0);
    });
    m->wake.store(0, std::memory_order_relaxed);
    if (!m->next_p) {
      if (g_sched.shutdown.load(std::memory_order_acquire)) break;
      continue;
    }
    set_watched(m->p, std::exchange(m->next_p, nullptr));
    m->spun = false;
    for (;;) {
      // Looking for work takes the scheduler's locks: inside a critical section, so that a
      // collection never stops this M while it holds one (left before execute, which switches).
      enter_critical();
      G* g = find_runnable(m);  // nullptr: the P was given back and this M is on the idle list
      leave_critical();
      if (!g) break;
      execute(m, g);
      if (!m->p) {  // the goroutine left blocking() without a P to continue on: go idle
        CriticalSection cs;
        LockGuard lk(g_sched.lock);
        m->link = g_sched.idle_m;
        g_sched.idle_m = m;
        break;
      }
    }
  }
  detach_current_thread();
  stack_t off{};
  off.ss_flags = SS_DISABLE;
  t_local.alt_signal_stack = false;
  sigaltstack(&off, nullptr);
  sys_free(alt.ss_sp, kAltStackSize, stats().stack_sys);
  m->exited.store(1, std::memory_order_release);
  return nullptr;
}

// Drops the spinning state after finding work, waking another spinner if more may be waiting.
void reset_spinning(M* m) {
  if (!m->spinning) return;
  m->spinning = false;
  g_sched.nmspinning.fetch_sub(1, std::memory_order_acq_rel);
  wakep();
}

G* find_runnable(M* m) {
  for (;;) {
    P* p = m->p;
    if (!p->live || g_sched.shutdown.load(std::memory_order_acquire)) {
      // GOMAXPROCS shrank below this P (or the runtime stops): hand its work to the others.
      while (G* g = runq_get(p)) {
        LockGuard lk(g_sched.lock);
        global_put_locked(g);
      }
    } else {
      run_timers(p);
      if (++p->schedtick % 61 == 0 && g_sched.runq_size) {
        if (G* g = global_get()) return reset_spinning(m), g;
      }
      if (G* g = runq_get(p)) return reset_spinning(m), g;
      if (g_sched.runq_size) {
        if (G* g = global_get()) return reset_spinning(m), g;
      }
      // Steal: four passes over the other Ps in random order.
      int n = g_sched.gomaxprocs;
      for (int pass = 0; pass < 4 && n > 1; ++pass) {
        int start = static_cast<int>(fastrand() % static_cast<uint32_t>(n));
        for (int k = 0; k < n; ++k) {
          P* victim = g_sched.allp[(start + k) % n];
          if (victim == p) continue;
          if (G* g = runq_steal(p, victim, pass == 3)) return reset_spinning(m), g;
          if (pass == 3) run_timers(victim);
        }
      }
      if (G* g = runq_get(p)) return reset_spinning(m), g;  // timers may have readied some
      // Spin a little before sleeping (Go's spinning M): work that appears within microseconds,
      // a goroutine readied by a channel hand-off elsewhere, is then picked up without the cost
      // of a futex sleep and wake-up on each side. It waits for stealable work only: a goroutine
      // in another P's runnext was just readied by a hand-off on that P and runs there next.
      // Breaking out for it made this M steal it on the last pass and the two goroutines of a
      // ping-pong migrate between threads at every exchange (pingpong: 900 against 400 ns).
      if (m->spinning && !m->spun) {
        m->spun = true;
        for (int i = 0; i < 2000; ++i) {
          cpu_relax();
          if (g_sched.runq_size) break;
          bool any = false;
          for (int k = 0; k < n && !any; ++k) any = g_sched.allp[k] != p && !runq_queue_empty(g_sched.allp[k]);
          if (any) break;
        }
        continue;
      }
    }
    // Nothing to do: give the P back; the M sleeps until start_m hands it one again.
    G* last = nullptr;
    bool was_spinning = false;
    {
      LockGuard lk(g_sched.lock);
      if (g_sched.runq_size && p->live && !g_sched.shutdown.load(std::memory_order_relaxed)) {
        last = global_get_locked();
      } else {
        if (p->live) pidle_put_locked(p);
        else p->owned = false;  // retired by GOMAXPROCS: dropped
        set_watched(m->p, static_cast<P*>(nullptr));
        // Before this M is on the idle list: from there start_m may take it at once and set its
        // spinning flag for the next round, which this round must not then clear (that spinner's
        // count would never be given back, and wakep would wait for it forever).
        was_spinning = std::exchange(m->spinning, false);
        m->link = g_sched.idle_m;
        g_sched.idle_m = m;
      }
    }
    if (last) return reset_spinning(m), last;
    if (was_spinning) g_sched.nmspinning.fetch_sub(1, std::memory_order_seq_cst);
    // Work may have arrived after the checks above, its wakep seeing this M still spinning:
    // look once more before sleeping (the barrier pairs with make_runnable's).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool work = g_sched.runq_size != 0;
    for (int i = 0; i < g_sched.gomaxprocs && !work; ++i) work = !runq_empty(g_sched.allp[i]);
    if (work) wakep();
    return nullptr;
  }
}

// ---- sysmon: fires timers when every M sleeps ----------------------------------------------

std::atomic<uint32_t> g_sysmon_wake{0};
std::atomic<int64_t> g_sysmon_deadline{INT64_MAX};
pthread_t g_sysmon;
bool g_sysmon_running = false;

// How many Ms were started: allm[0, n) (an entry never changes once written).
int ms_started() {
  CriticalSection cs;
  LockGuard lk(g_sched.lock);
  return g_sched.nm;
}

// Split stacks grow without asking the runtime (libgcc maps segments), so a goroutine that
// recurses without end would take all memory. As in Go, a stack deeper than kMaxStackBytes is a
// fatal error: sysmon measures each running goroutine's segments in use on every round.
void check_stack_depths() {
  if (!kSplitStacks) return;
  int nm = ms_started();
  for (int i = 0; i < nm; ++i) {
    M* m = g_sched.allm[i];
    if (!m->current_segment || !std::atomic_ref<G*>(m->curg).load(std::memory_order_relaxed)) continue;
    void* current = __atomic_load_n(m->current_segment, __ATOMIC_RELAXED);
    if (current && stack_depth_bytes(current, kMaxStackBytes) > kMaxStackBytes)
      fatal("goroutine stack overflow: a goroutine's stack exceeds the %llu-byte limit",
            static_cast<unsigned long long>(kMaxStackBytes));
  }
}

// 10 ms, as Go's sysmon at its slowest, when it watches stack depths or running goroutines
// (preemption); else timers wake it.
constexpr int64_t kSysmonMaxSleep = kSplitStacks ? 10000000 : 100000000;

// ---- preemption (preempt.hpp; Go's retake and preemptone) ------------------------------------

constexpr int64_t kPreemptAfterNs = 10000000;  // Go's forcePreemptNS
// GODEBUG=asyncpreemptoff=1 turns it off. Off under ThreadSanitizer (Runtime's constructor),
// which runs a signal handler only at the thread's next intercepted call, on a copy of the
// interrupted context.
bool g_async_preempt = true;
std::atomic<uint64_t> g_preemptions{0};

// Called by the interrupted goroutine itself, as if its interrupted instruction had called it
// (core/signalcall.hpp): yields the processor as Gosched does. The copy of the signal frame on
// its stack (every register of the interrupted code, vector ones included) spans
// [injected_lo, injected_hi) of the thread's record, set by the handler that injected the call.
void async_preempted(void*) {
  g_preemptions.fetch_add(1, std::memory_order_relaxed);
  ThreadRecord* r = t_local.record;
  // Checkmark (gc/mgcmark.hpp): if this stack was scanned already this cycle, the copy is words
  // written after the scan, dead registers included (a vector register's or a loop's last
  // pointer into an object long dropped); parked in yield, it is live stack, and the checking
  // mark would take those for pointers the concurrent mark missed. It scans them now instead.
  if (checkmark_scrubs_stacks() && gc_marking()) [[unlikely]]
    scan_range_of_black_stack(r->injected_lo, r->injected_hi);
  // From here the copy is part of this goroutine's stack, scanned with it (or just now): no
  // longer registers of the thread's (ThreadRecord::injected_lo). Cleared after the scan above:
  // a mark termination between the two still finds it as registers. A stop that reads the
  // fields has this thread stopped (its signal handler orders them).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  r->injected_lo = r->injected_hi = 0;
  yield();
}

// Stops m's thread alone and, if it is still running g (the same run, seq) at an instruction
// where that is safe, has it call async_preempted on its way out. False when the interrupted
// address had no verdict yet: it is classified now (the thread running again) for a retry.
bool preempt_m(M* m, G* g, uint64_t seq) {
#if defined(__x86_64__)
  ThreadRecord* r = m->rec;
  if (!r) return true;
  struct Look {
    M* m;
    G* g;
    uint64_t seq;
    uintptr_t pc;
    CodeVerdict verdict;
  } look{m, g, seq, 0, CodeVerdict::NotPreemptible};
  stop_thread(r, r->attach_id, [&look](ThreadRecord* rec) {
    // Held in its suspend handler; or, with no registers to go on, found in blocked_wait or
    // stopped at the end of a critical section (a call into gort): then not preempted.
    if (!rec->stopped_async || rec->g_sys_sp) return;  // or on the M's own stack (runtime code)
    M* m = look.m;
    if (m->curg != look.g || m->schedseq.load(std::memory_order_relaxed) != look.seq || !m->p ||
        std::atomic_ref<int>(look.g->blocking_depth).load(std::memory_order_relaxed))
      return;  // it switched meanwhile, or it runs inside blocking() without a processor
    // Only code running on the goroutine's own stack (its first stack or a segment of it): a
    // thread stopped inside a signal handler of the program's, on the alternate signal stack,
    // would otherwise have the preemption injected into the handler, which then switched
    // goroutines from a signal context (a crash, found by the test of such handlers).
    uintptr_t sp = rec->stopped_sp;
    if (!stack_locate(sp, rec->g_stack_lo, rec->g_stack_hi, rec->split_segments, rec->split_current).stack) return;
    look.pc = static_cast<uintptr_t>(rec->regs.gregs[REG_RIP]);
    look.verdict = preempt_cached_verdict(look.pc);
    if (look.verdict == CodeVerdict::Preemptible) rec->resume_call = async_preempted;
  });
  if (look.verdict != CodeVerdict::Unknown) return true;
  preempt_learn(look.pc, 1000000);  // waits up to 1 ms for the verdict
  return false;
#else
  (void)m, (void)g, (void)seq;
  return true;
#endif
}

// Sysmon, every round: preempts each goroutine that has run for kPreemptAfterNs since sysmon
// first saw it running (so after 10 to 20 ms, as in Go). A few tries in a row when the
// interrupted address had to be classified first (each waits up to 1 ms for the classifier
// thread): a busy loop spans only a few functions.
void retake(int64_t now) {
  if (!g_async_preempt) return;
  int nm = ms_started();
  for (int i = 0; i < nm; ++i) {
    M* m = g_sched.allm[i];
    uint64_t seq = m->schedseq.load(std::memory_order_relaxed);
    G* g = std::atomic_ref<G*>(m->curg).load(std::memory_order_relaxed);
    // An M without a P runs a goroutine inside blocking() (a system call, usually): no signal
    // for it, which would interrupt the call (EINTR) every round for nothing.
    P* p = std::atomic_ref<P*>(m->p).load(std::memory_order_relaxed);
    if (!g || !p || seq != m->seen_schedseq) {
      m->seen_schedseq = seq;
      m->seen_since = now;
      continue;
    }
    if (now - m->seen_since < kPreemptAfterNs) continue;
    for (int attempt = 0; attempt < 4 && !preempt_m(m, g, seq); ++attempt) {
    }
  }
}

// Lowers sysmon's deadline to `when` if that is earlier; true if it did.
bool lower_sysmon_deadline(int64_t when) {
  int64_t cur = g_sysmon_deadline.load();
  while (when < cur)
    if (g_sysmon_deadline.compare_exchange_weak(cur, when)) return true;
  return false;
}

// ---- goroutine dumps and deadlock (Go's traceback and checkdead) --------------------------

// Go's SIGQUIT: a dump of every goroutine, then exit status 2. The handler only wakes sysmon,
// which writes the dump (nothing in a signal handler may take a lock or allocate).
std::atomic<bool> g_sigquit{false};

void on_sigquit(int) {
  g_sigquit.store(true, std::memory_order_release);
  g_sysmon_wake.fetch_add(1, std::memory_order_release);
  futex_wake(&g_sysmon_wake, 1);
}

void install_sigquit_handler() {
  struct sigaction old{};
  sigaction(SIGQUIT, nullptr, &old);
  // The program's own handler stays. An ignored SIGQUIT does not: Go handles SIGQUIT even then
  // (a shell starts background jobs with it ignored), keeping only SIGHUP and SIGINT ignored.
  bool own = (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != nullptr : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN;
  if (own) return;
  struct sigaction sa{};
  sa.sa_handler = on_sigquit;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGQUIT, &sa, nullptr);
}

void write_all(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

[[noreturn]] void die_with_dump(const char* headline) {
  write_all(2, std::string(headline) + "\n\n" + goroutine_dump(/*dying=*/true));
  _exit(2);
}

// Everything that could still wake a goroutine or a program thread is absent: no goroutine runs,
// is runnable or is inside blocking(); no timer is set; every program thread is parked in a gort
// wait; the collector has no cycle or finalizer to run; and no thread outside gort exists that
// could attach and send (C++ programs have those; Go programs do not).
bool all_asleep(bool timers) {
  if (g_sched.shutdown.load(std::memory_order_acquire) || timers) return false;
  if (g_sched.npidle.load(std::memory_order_acquire) != g_sched.gomaxprocs) return false;
  if (g_sched.nmspinning.load() || g_sched.nblocking.load() || g_sched.runq_size.load()) return false;
  for (int i = 0; i < g_sched.gomaxprocs; ++i) {
    P* p = g_sched.allp[i];
    if (p->runnext.load() || p->runqhead.load() != p->runqtail.load()) return false;
  }
  int threads = attached_program_threads();
  if (g_sched.parked_threads.load(std::memory_order_acquire) != threads) return false;
  if (threads == 0 && g_sched.ngoroutines.load() == 0) return false;  // nothing waits at all
  return gc_quiescent() && all_threads_known();
}

// Go's checkdead runs when the last M goes idle, under the one lock every transition takes.
// gort's transitions do not all take one lock (the local run queues are lock-free), so sysmon
// checks instead, and reports only a state seen at two of its rounds at least 5 ms apart with
// no wake-up, spawn or blocking() exit in between (g_sched.progress).
void check_dead(bool timers) {
  static int64_t since = 0;
  static uint64_t progress = 0;
  if (!all_asleep(timers)) {
    since = 0;
    return;
  }
  uint64_t now_progress = g_sched.progress.load(std::memory_order_acquire);
  int64_t now = static_cast<int64_t>(nanotime());
  if (since == 0 || now_progress != progress) {
    since = now;
    progress = now_progress;
    return;
  }
  if (now - since < 5000000) return;
  die_with_dump("fatal error: all goroutines are asleep - deadlock!");
}

void* sysmon_main(void*) {
  attach_current_thread(/*scan_stack=*/false);
  while (!g_sched.shutdown.load(std::memory_order_acquire)) {
    check_stack_depths();
    retake(static_cast<int64_t>(nanotime()));
    uint32_t seen = g_sysmon_wake.load(std::memory_order_acquire);
    // While sysmon scans, its deadline reads as "none": a timer set meanwhile on a P it has
    // already scanned then wakes it (the wait below returns at once and it scans again). With
    // the last round's deadline left in place, such a timer compared against a deadline already
    // past, woke no one and fired only at the next round, up to kSysmonMaxSleep late.
    g_sysmon_deadline.store(INT64_MAX);
    int64_t next = INT64_MAX;
    {
      CriticalSection cs;
      // Every P ever made: one retired by a smaller GOMAXPROCS may still hold timers.
      for (int i = 0; i < kMaxProcs && g_sched.allp[i]; ++i) next = std::min(next, run_timers(g_sched.allp[i]));
    }
    lower_sysmon_deadline(next);  // a timer set during the scan may have lowered it already
    if (g_sigquit.load(std::memory_order_acquire)) die_with_dump("SIGQUIT: quit");
    check_dead(next != INT64_MAX);
    int64_t now = static_cast<int64_t>(nanotime());
    int64_t wait = std::min<int64_t>(std::max<int64_t>(next - now, 0), g_async_preempt ? kPreemptAfterNs : kSysmonMaxSleep);
    if (wait > 0) blocked_wait([&] { futex_wait(&g_sysmon_wake, seen, wait); });
  }
  detach_current_thread();
  return nullptr;
}

}  // namespace

// ---- goroutine-facing API -------------------------------------------------------------------

void set_async_preempt(bool on) { g_async_preempt = on; }
uint64_t async_preemptions() { return g_preemptions.load(std::memory_order_relaxed); }

void note_calling_goroutine_stack() {
#if GORT_SPLIT_STACK
  // Safe here and only here: the goroutine is this thread's and it is not in __morestack (it
  // called on_system_stack), so its segment list is at rest.
  M* m = current_m();
  if (m && m->curg && m->rec->g_sys_sp) stack_note_segments(m->curg->stack, __morestack_segments);
#endif
}

// on_system_stack's switch as a sanitizer must see it (sanitizer.hpp): a switch to the M's stack
// and back, announced on both sides. TSan keeps one fiber for the two: the same goroutine runs.
#if defined(__x86_64__)
struct SystemStackCall {
  void (*fn)(void*) noexcept;
  void* arg;
  SanitizerFiber goroutine;  // its stack while the call runs on the M's
};
void call_on_system_stack_sanitized(M* m, void (*fn)(void*) noexcept, void* arg, uintptr_t top) {
  SystemStackCall call{fn, arg, {}};
  // The goroutine's stack is live down to here now, not only to on_system_stack's frame: a scan
  // meanwhile reads from g_sys_sp (and checkmark zeroes below it, but for a red zone, which
  // holds no more than gort_call_on_stack's return address and saved frame pointer).
  m->rec->g_sys_sp = stack_pointer();
#if GORT_ASAN
  __sanitizer_start_switch_fiber(&call.goroutine.fake_stack, m->san.stack_bottom, m->san.stack_size);
#endif
  gort_call_on_stack(
      [](void* p) noexcept {
        auto* c = static_cast<SystemStackCall*>(p);
#if GORT_ASAN
        void* fake = nullptr;
        __sanitizer_finish_switch_fiber(nullptr, &c->goroutine.stack_bottom, &c->goroutine.stack_size);
#endif
        c->fn(c->arg);
#if GORT_ASAN
        __sanitizer_start_switch_fiber(&fake, c->goroutine.stack_bottom, c->goroutine.stack_size);
#endif
      },
      &call, top);
#if GORT_ASAN
  __sanitizer_finish_switch_fiber(call.goroutine.fake_stack, nullptr, nullptr);
#endif
}
#endif

// With fixed stacks too: the runtime's slow paths (marking in assists and barrier flushes, stack
// self-scans, span refills) then never use a goroutine's 64 KiB, and never leave the addresses
// they handle in its dead frames, where the checking mark of GODEBUG=gccheckmark=1 would find
// them (an object whose finalizer is due is traced without being marked, see mfinal.cpp).
void on_system_stack(void (*fn)(void*) noexcept, void* arg) {
#if defined(__x86_64__)
  M* m = current_m();
  if (!m || !m->curg || m->rec->g_sys_sp) {  // not on a goroutine, or already on the M's stack
    fn(arg);
    // On the stack it runs on: a program's attached thread (or an M's own). The same rules as
    // after the switch back, below: fn's dead frames and the caller-saved registers keep what fn
    // handled, which no scan of this stack saw if it was scanned before. Checkmark found one
    // (stop 25's CI, "gc: stress: threads build and drop trees"): an assist's conservative scan
    // of a 24-byte object kept the object's end, the address of the next (dead) object, in a
    // register its callee saved, and a later park's frame showed it in a slot it never wrote.
    if (checkmark_scrubs_stacks() && current_thread_attached()) [[unlikely]] scrub_stack(64 << 10);
    clear_caller_saved_registers();
    return;
  }
  m->rec->g_sys_sp = stack_pointer();
#if GORT_SPLIT_STACK
  uintptr_t guard = split_guard();
  set_split_guard(0);  // the M's own stack never grows
#endif
  uintptr_t top = (reinterpret_cast<uintptr_t>(m->g0) - 256) & ~uintptr_t{15};
  if constexpr (kSanitized) call_on_system_stack_sanitized(m, fn, arg, top);
  else gort_call_on_stack(fn, arg, top);
#if GORT_SPLIT_STACK
  set_split_guard(guard);
#endif
  m->rec->g_sys_sp = 0;
  // Checkmark (gc/mgcmark.hpp): nothing stale below what the concurrent mark scanned. fn's dead
  // frames may hold copies of the goroutine's pointers (libgcc's unwinder copies its frames'
  // registers); a later call on this stack could expose them, in slots it has not written yet,
  // to the checking mark, which would report the objects they name if they died meanwhile.
  if (checkmark_scrubs_stacks()) [[unlikely]] scrub_stack_below(top, m->rec->stack_lo);
  // The same for registers: fn's work (marking, a barrier flush) leaves pointers in caller-saved
  // registers that no scan of the goroutine saw, and a later frame or signal frame could store
  // them on its stack (core/regs.hpp). They are dead here (a void call returns).
  clear_caller_saved_registers();
#else
  fn(arg);
#endif
}

// initial-exec and constant-initialized: no TLS helper call (which, with split stacks, would
// send every select through __morestack), seeded on first use.
thread_local uint32_t t_fastrand __attribute__((tls_model("initial-exec"))) = 0;

uint32_t fastrand() {
  uint32_t& x = t_fastrand;
  if (x == 0) [[unlikely]] x = 0x9e3779b9u ^ static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&x));
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

void init_waiter(Waiter& w) {
  M* m = current_m();
  w.g = m ? m->curg : nullptr;
  w.own_wake.store(0, std::memory_order_relaxed);
  w.wake = &w.own_wake;
  w.select_done = nullptr;
  w.next = nullptr;
  w.ok = false;
}

void park_with(Waiter& w, void (*unlock)(void*), void* arg) {
  check_not_forked_child("a wait (channel, WaitGroup, Mutex, sleep)");
  if (w.g) {
    w.g->wait_reason = w.wait_reason;
    w.g->park_unlock = unlock;
    w.g->park_arg = arg;
    switch_to_scheduler(After::Park);
    leave_critical_after_switch();
    return;
  }
  // Counted before the queue's lock is released: a waker, who takes that lock, uncounts it.
  g_sched.parked_threads.fetch_add(1, std::memory_order_acq_rel);
  t_local.record->wait_reason.store(w.wait_reason, std::memory_order_relaxed);
  unlock(arg);
  leave_critical();
  user_thread_blocked(true);
  blocked_wait([&w] {
    while (!w.wake->load(std::memory_order_acquire)) futex_wait(w.wake, 0);
  });
  user_thread_blocked(false);
  t_local.record->wait_reason.store(nullptr, std::memory_order_relaxed);
}

void park(Waiter& w, SpinLock& lock) {
  park_with(w, [](void* l) { static_cast<SpinLock*>(l)->unlock(); }, &lock);
}

void ready(Waiter& w) {
  if (w.g) {
    make_runnable(w.g, true);
    return;
  }
  std::atomic<uint32_t>* word = w.wake;  // w may be gone once the store lands
  g_sched.progress.fetch_add(1, std::memory_order_relaxed);
  g_sched.parked_threads.fetch_sub(1, std::memory_order_acq_rel);
  word->store(1, std::memory_order_release);
  futex_wake(word, 1);
}

void spawn(GoClosureBase* c) { spawn_goroutine(c, false); }

// The return addresses of a goroutine that is not running (parked or runnable), innermost
// first, from its saved context; 0 when it runs (its thread would have to be stopped). It stays
// parked meanwhile: its scan lock keeps execute() from resuming it (as for a mark worker).
struct StackWalk {
  uintptr_t* pcs;
  int max;
  int n;
  bool past_trampoline;
  uintptr_t trampoline;  // gort_unwind_parked or gort_unwind_stopped
};

_Unwind_Reason_Code collect_past_trampoline(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<StackWalk*>(arg);
  uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0 || w->n == w->max) return _URC_END_OF_STACK;
  if (!w->past_trampoline) {  // the walker's own frames, up to the trampoline
    w->past_trampoline = pc > w->trampoline && pc <= w->trampoline + 64;
    return _URC_NO_REASON;
  }
  w->pcs[w->n++] = pc;
  return _URC_NO_REASON;
}

int parked_goroutine_stack(G* g, uintptr_t* pcs, int max) {
  for (uint32_t free = 0; !g->scan_lock.compare_exchange_weak(free, 1, std::memory_order_seq_cst); free = 0) cpu_relax();
  StackWalk w{pcs, max, 0, false, reinterpret_cast<uintptr_t>(&gort_unwind_parked)};
  GStatus st = g->status.load(std::memory_order_seq_cst);
  if (st != GStatus::Running && st != GStatus::Dead && st != GStatus::Idle && g->ctx) {
    gort_unwind_parked([](void* a) noexcept { _Unwind_Backtrace(collect_past_trampoline, a); }, &w, g->ctx);
  }
  g->scan_lock.store(0, std::memory_order_release);
  return w.n;
}

// Frames a dump leaves out: at the top, the park and switch machinery (gort::internal, but not a
// goroutine's closure, which holds the program's code); anywhere, libgcc's frames between stack
// segments; at the bottom, the goroutine's entry.
bool machinery_frame(const SourceFrame& f) {
  return (runtime_frame(f) && !function_name_starts_with(f.function, "gort::internal::GoClosure")) ||
         f.function.rfind("jump_fcontext", 0) == 0 || f.function.rfind("gort_call_on_stack", 0) == 0 ||
         f.function.rfind("gort_injected_call", 0) == 0;  // a preemption (core/signalcall.hpp)
}
bool hidden_frame(const std::string& name) {
  return name.rfind("__morestack", 0) == 0 || name.find("goroutine_entry(") != std::string::npos ||
         name.rfind("make_fcontext", 0) == 0;
}

// "function()\n\tfile:line\n" for each frame of pcs (Go's traceback lines); without debug
// information the address stands for the file and line.
void append_frames(std::string& out, const uintptr_t* pcs, int n) {
  bool top = true;
  char line[64];
  for (int i = 0; i < n; ++i) {
    for (const SourceFrame& f : symbolize_return_address(pcs[i])) {
      const std::string& name = f.function;
      if ((top && (machinery_frame(f) || name.empty())) || hidden_frame(name)) continue;
      top = false;
      out += name.empty() ? "??" : name;
      out += "\n\t";
      if (!f.file.empty()) {
        out += f.file;
        std::snprintf(line, sizeof line, ":%lld\n", static_cast<long long>(f.line));
      } else {
        std::snprintf(line, sizeof line, "pc=%#lx\n", static_cast<unsigned long>(pcs[i]));
      }
      out += line;
    }
  }
}

// Go's goroutine dump (GOTRACEBACK=single's format): the program's goroutines (not the runtime's
// own) with their stacks, then each attached program thread parked in a gort wait (its stack is
// not walked: it is blocked in the kernel).
namespace {
_Unwind_Reason_Code collect_own(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<StackWalk*>(arg);
  uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0 || w->n == w->max) return _URC_END_OF_STACK;
  w->pcs[w->n++] = pc;
  return _URC_NO_REASON;
}
}  // namespace

// A goroutine running on another thread: that thread is stopped (as for a stack scan) and its
// stack walked from the registers its stop saved, through gort_unwind_stopped. Nothing that
// allocates or locks runs while it is stopped: the walk only fills pcs (libgcc's unwinder finds
// its tables with glibc's lock-free _dl_find_object). 0 if it stopped running meanwhile.
int running_goroutine_stack(G* g, uintptr_t* pcs, int max) {
#if defined(__x86_64__)
  ThreadRecord* r = nullptr;
  uint64_t attach_id = 0;
  if (!goroutine_thread(g, &r, &attach_id)) return 0;
  StackWalk w{pcs, max, 0, false, reinterpret_cast<uintptr_t>(&gort_unwind_stopped)};
  stop_thread(r, attach_id, [&](ThreadRecord* rec) {
    if (running_goroutine(rec) != g || g->status.load(std::memory_order_seq_cst) != GStatus::Running) return;
    const greg_t* gr = rec->regs.gregs;
    StoppedRegs regs{static_cast<uintptr_t>(gr[REG_RSP]), static_cast<uintptr_t>(gr[REG_RIP]),
                     static_cast<uintptr_t>(gr[REG_RBP]), static_cast<uintptr_t>(gr[REG_RBX]),
                     static_cast<uintptr_t>(gr[REG_R12]), static_cast<uintptr_t>(gr[REG_R13]),
                     static_cast<uintptr_t>(gr[REG_R14]), static_cast<uintptr_t>(gr[REG_R15])};
    if (!regs.rip || !regs.rsp) return;  // stopped without registers (waiting in blocked_wait)
    gort_unwind_stopped([](void* a) noexcept { _Unwind_Backtrace(collect_past_trampoline, a); }, &w, &regs);
  });
  return w.n;
#else
  (void)g, (void)pcs, (void)max;
  return 0;
#endif
}

void for_each_goroutine(void (*fn)(const GoroutineRecord&, void*), void* arg, bool dying) {
  struct Walking {  // counted for the whole walk, exceptions included
    Walking() { g_stack_walks.fetch_add(1, std::memory_order_relaxed); }
    ~Walking() { g_stack_walks.fetch_sub(1, std::memory_order_release); }
  } walking;
  if (!dying) {  // every M's next execute sees g_stack_walks (as a mark's start orders gc_marking)
    StoppableLockGuard wl(world_lock());
    stop_the_world();
    start_the_world();
  }
  struct Entry {
    int64_t id;
    const char* state;
    G* g;
  };
  std::vector<Entry> gs;
  {
    LockGuard lk(g_sched.g_lock);
    for (G* g = g_sched.allg; g; g = g->allnext) {
      GStatus st = g->status.load(std::memory_order_acquire);
      if (g->system || st == GStatus::Idle || st == GStatus::Dead) continue;
      const char* state = st == GStatus::Waiting    ? g->wait_reason
                          : st == GStatus::Runnable ? "runnable"
                          : std::atomic_ref<int>(g->blocking_depth).load(std::memory_order_relaxed) > 0
                              ? "syscall"  // inside blocking(): Go's state for a goroutine in a system call
                              : "running";
      gs.push_back({g->id, *state ? state : "waiting", g});
    }
  }
  std::sort(gs.begin(), gs.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });  // as Go lists them
  M* m = current_m();
  G* self = m ? m->curg : nullptr;
  for (const Entry& e : gs) {  // Gs are never freed: walking them outside g_lock is safe
    uintptr_t pcs[kMaxDumpFrames];
    int n = 0;
    if (e.g == self) {
      StackWalk w{pcs, kMaxDumpFrames, 0, true, 0};
      // From the M's stack: gort_call_on_stack's call frame information leads the unwinder back
      // onto the goroutine's (libgcc's unwinder is not split-stack code).
      on_system_stack([&w] { _Unwind_Backtrace(collect_own, &w); });
      n = w.n;
    } else {
      n = parked_goroutine_stack(e.g, pcs, kMaxDumpFrames);
      if (n == 0 && e.g->status.load(std::memory_order_seq_cst) == GStatus::Running)
        on_system_stack([&] { n = running_goroutine_stack(e.g, pcs, kMaxDumpFrames); });
    }
    fn({e.id, e.state, pcs, n}, arg);
  }
}

std::string goroutine_dump(bool dying) {
  std::string out;
  char line[256];
  for_each_goroutine([&](const GoroutineRecord& g) {
    std::snprintf(line, sizeof line, "goroutine %lld [%s]:\n", static_cast<long long>(g.id), g.state);
    out += line;
    append_frames(out, g.pcs, g.n);
    out += '\n';
  }, dying);
  for_each_attached([&](ThreadRecord* r) {
    const char* reason = r->wait_reason.load(std::memory_order_relaxed);
    if (!reason) return;
    char name[32] = "?";
    pthread_getname_np(r->thread, name, sizeof name);
    std::snprintf(line, sizeof line, "thread %d \"%s\" [%s]:\n\n", static_cast<int>(r->tid), name, reason);
    out += line;
  });
  return out;
}

namespace {
// noexcept: nothing in it throws, and a function that could unwind through the critical section
// would call libgcc's _Unwind_Resume, a non-split-stack call (core/mem.hpp).
uint32_t g_spawn_scan_gen = 0;  // written with the world stopped

void start_goroutine(GoClosureBase* c, bool system) noexcept {
  CriticalSection cs;
  M* m = current_m();
  G* g = gfree_get(m ? m->p : nullptr);
  if (!g) {
    g = new (g_sched.records.alloc(sizeof(G), alignof(G))) G;
    LockGuard lk(g_sched.g_lock);
    g->allnext = g_sched.allg;
    g_sched.allg = g;
  }
  g->ctx = nullptr;  // its stack comes when it first runs
  g->fn = c;
  // Started during a concurrent mark: its stack is empty, hence scanned (black); its closure may
  // be held by nothing else once the spawner drops it.
  g->scan_gen.store(g_spawn_scan_gen, std::memory_order_relaxed);
  if (gc_marking()) shade(c);
  g->system = system;
  g->id = system ? 0 : g_sched.next_goid.fetch_add(1, std::memory_order_relaxed);  // main is 1, as in Go
  g->wait_reason = "";
  if (!system) g_sched.ngoroutines.fetch_add(1, std::memory_order_relaxed);
  make_runnable(g, true);
}
}  // namespace

void spawn_goroutine(GoClosureBase* c, bool system) {
  if (g_sched.gomaxprocs == 0) throw_logic_error("gort::go: no gort::Runtime is running");
  check_not_forked_child("gort::go");
  start_goroutine(c, system);
}

void yield() {
  M* m = current_m();
  if (!m || !m->curg) {
    os_yield();
    return;
  }
  enter_critical();
  switch_to_scheduler(After::Yield);
  leave_critical_after_switch();
}

bool on_goroutine() {
  M* m = current_m();
  return m && m->curg && !m->rec->g_sys_sp;
}

int num_goroutine() {
  return static_cast<int>(g_sched.ngoroutines.load(std::memory_order_relaxed)) + (g_sched.main_is_goroutine ? 0 : 1);
}

void set_main_is_goroutine(bool on) { g_sched.main_is_goroutine = on; }

// An attached thread that is not a goroutine sleeps in the kernel. Out of line: the libc call
// would make sleep_ns ask for a 1 MiB split-stack segment on goroutines too.
namespace {
__attribute__((noinline)) void sleep_thread(int64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  user_thread_blocked(true);
  blocked_wait([&ts] {
    while (nanosleep(&ts, &ts) != 0) {
    }
  });
  user_thread_blocked(false);
}
}  // namespace

void sleep_ns(int64_t ns) {
  if (ns <= 0) {
    yield();
    return;
  }
  M* m = current_m();
  if (!m || !m->curg) {
    sleep_thread(ns);
    return;
  }
  Waiter w;
  init_waiter(w);
  w.wait_reason = "sleep";
  enter_critical();
  P* p = current_m()->p;
  int64_t when = static_cast<int64_t>(nanotime()) + ns;
  p->timers_lock.lock();
  timer_push_locked(p, Timer{when, &w});
  p->next_timer.store(p->timers[0].when, std::memory_order_release);
  if (lower_sysmon_deadline(when)) {  // seq_cst, against sysmon's store before it scans
    g_sysmon_wake.fetch_add(1, std::memory_order_release);
    futex_wake(&g_sysmon_wake, 1);
  }
  park(w, p->timers_lock);
}

void enter_blocking() {
  M* m = current_m();
  if (!m || !m->curg) return;
  std::atomic_ref<int> depth(m->curg->blocking_depth);
  depth.store(depth.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (depth.load(std::memory_order_relaxed) > 1) return;  // nested: the P is already with another M
  g_sched.nblocking.fetch_add(1, std::memory_order_acq_rel);
  CriticalSection cs;
  P* p = m->p;
  set_watched(m->p, static_cast<P*>(nullptr));
  // Hand the P to another M so the other goroutines keep running (Go's handoffp).
  start_m(p, false);
}

void exit_blocking() {
  M* m = current_m();
  if (!m || !m->curg) return;
  std::atomic_ref<int> depth(m->curg->blocking_depth);
  depth.store(depth.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  if (depth.load(std::memory_order_relaxed) > 0) return;
  g_sched.progress.fetch_add(1, std::memory_order_relaxed);
  g_sched.nblocking.fetch_sub(1, std::memory_order_acq_rel);
  enter_critical();
  m = current_m();
  if (m->p) {  // the goroutine parked inside fn and was resumed on an M with a P: nothing to do
    leave_critical();
    return;
  }
  P* p;
  {
    LockGuard lk(g_sched.lock);
    p = pidle_get_locked();
  }
  if (p) {
    set_watched(m->p, p);
    leave_critical();
    return;
  }
  // No P free: queue this goroutine and let the M go idle (Go's exitsyscall0).
  switch_to_scheduler(After::Blocking);
  leave_critical_after_switch();
}

namespace {
int set_gomaxprocs(int n) {
  StoppableLockGuard wl(world_lock());
  int old = g_sched.gomaxprocs;
  if (n < 1 || n == old) return old;
  if (n > kMaxProcs) n = kMaxProcs;
  stop_the_world();
  for (int i = 0; i < std::max(n, old); ++i) {
    P*& p = g_sched.allp[i];
    if (!p) {
      p = new (g_sched.records.alloc(sizeof(P), alignof(P))) P;
      p->id = i;
    }
    bool live = i < n;
    if (live && !p->live) {
      p->live = true;
      // A retired P that an M still holds stays with it; one that was dropped becomes idle.
      if (!p->owned) pidle_put_locked(p);
    } else if (!live && p->live) {
      p->live = false;
      // An idle P leaves the idle list; one held by an M is dropped at its next schedule.
      for (P** l = &g_sched.idle_p; *l; l = &(*l)->link) {
        if (*l == p) {
          *l = p->link;
          --g_sched.npidle;
          break;
        }
      }
    }
  }
  g_sched.gomaxprocs = n;
  start_the_world();
  {
    CriticalSection cs;
    for (int i = 0; i < n; ++i) wakep();
  }
  return old;
}
}  // namespace

int gomaxprocs(int n) {
  int old = 0;
  on_system_stack([&] { old = set_gomaxprocs(n); });  // stops the world: libc calls
  return old;
}

void sched_start(int procs) {
  stack_init();
  g_sched.shutdown.store(false);
  if (g_sched.gomaxprocs == 0) {
    StoppableLockGuard wl(world_lock());
    for (int i = 0; i < procs && i < kMaxProcs; ++i) {
      P* p = new (g_sched.records.alloc(sizeof(P), alignof(P))) P;
      p->id = i;
      p->live = true;
      g_sched.allp[i] = p;
      pidle_put_locked(p);
    }
    g_sched.gomaxprocs = procs < kMaxProcs ? procs : kMaxProcs;
  }
  install_sigquit_handler();
  preempt_start();
  g_sysmon = start_service_thread(sysmon_main, nullptr, "gort-sysmon");
  g_sysmon_running = true;
}

void sched_stop() {
  g_sched.shutdown.store(true, std::memory_order_release);
  if (g_sysmon_running) {
    g_sysmon_wake.fetch_add(1);
    futex_wake(&g_sysmon_wake);
    join_service_thread(g_sysmon);
    g_sysmon_running = false;
  }
  preempt_stop();
  // Idle Ms exit when woken; busy ones once their goroutine parks or ends. An M whose goroutine
  // never gives it back (an endless loop) is left running, as a process exit would leave it.
  int nm = ms_started();
  for (int i = 0; i < nm; ++i) {
    M* m = g_sched.allm[i];
    m->wake.store(1, std::memory_order_release);
    futex_wake(&m->wake, 1);
  }
  int64_t deadline = static_cast<int64_t>(nanotime()) + 1000000000;
  int kept = 0;
  for (int i = 0; i < nm; ++i) {
    M* m = g_sched.allm[i];
    while (!m->exited.load(std::memory_order_acquire) && static_cast<int64_t>(nanotime()) < deadline) os_yield();
    if (m->exited.load(std::memory_order_acquire)) join_service_thread(m->thread);
    else g_sched.allm[kept++] = m;
  }
  LockGuard lk(g_sched.lock);
  g_sched.nm = kept;
  g_sched.idle_m = nullptr;  // the exited Ms were on it
}

void mark_goroutines(MarkWorker& w, uint64_t* stack_bytes) {
  LockGuard lk(g_sched.g_lock);
  for (G* g = g_sched.allg; g; g = g->allnext) {
    GStatus st = g->status.load(std::memory_order_acquire);
    if (st == GStatus::Dead || st == GStatus::Idle) continue;
    w.mark(reinterpret_cast<uintptr_t>(g->fn));
    if (st == GStatus::Running || !g->ctx) continue;  // scanned with its M, or not started yet
    auto sp = reinterpret_cast<uintptr_t>(g->ctx);
    // Switched out: nothing under the saved context is live (no red zone).
    for_each_stack_range(
        sp, 0, g->stack.lo, g->stack.hi, g->split.segments(), g->split.current(),
        [&](uintptr_t lo, uintptr_t hi) {
          w.scan_conservative(lo, hi);
          *stack_bytes += hi - lo;
        },
        checkmark_scanning());
  }
}


// ---- concurrent stack scanning (gc/mgcmark.cpp) --------------------------------------------

void set_spawn_scan_gen(uint32_t gen) { g_spawn_scan_gen = gen; }

int idle_procs() {
  int idle = g_sched.npidle.load(std::memory_order_relaxed) - running_user_threads();
  return idle > 0 ? idle : 0;
}

G* allg_first() {
  LockGuard lk(g_sched.g_lock);
  return g_sched.allg;
}
G* allg_next(G* g) { return g->allnext; }

bool scan_parked_goroutine(G* g, uint32_t gen, MarkWorker& w, uint64_t* stack_bytes) {
  if (g->scan_gen.load(std::memory_order_acquire) == gen) return true;
  for (uint32_t free = 0; !g->scan_lock.compare_exchange_weak(free, 1, std::memory_order_seq_cst); free = 0) cpu_relax();
  bool done = true;
  if (g->scan_gen.load(std::memory_order_relaxed) != gen) {
    GStatus st = g->status.load(std::memory_order_seq_cst);
    if (st == GStatus::Running) {
      done = false;  // its M's thread must be stopped to scan it
    } else {
      if (st != GStatus::Dead && st != GStatus::Idle) {
        w.mark(reinterpret_cast<uintptr_t>(g->fn));
        if (g->ctx) {
          auto sp = reinterpret_cast<uintptr_t>(g->ctx);
          for_each_stack_range(sp, 0, g->stack.lo, g->stack.hi, g->split.segments(), g->split.current(),
                               [&](uintptr_t lo, uintptr_t hi) {
                                 w.scan_conservative(lo, hi);
                                 *stack_bytes += hi - lo;
                               });
          if (checkmark_scrubs_stacks())
            stack_zero_dead(sp, 0, g->stack.lo, g->stack.hi, g->split.segments(), g->split.current(), true);
        }
      }
      g->scan_gen.store(gen, std::memory_order_release);
    }
  }
  g->scan_lock.store(0, std::memory_order_release);
  return done;
}

bool goroutine_thread(G* g, ThreadRecord** r, uint64_t* attach_id) {
  if (g->status.load(std::memory_order_seq_cst) != GStatus::Running) return false;
  // g may have left its M and started on another meanwhile: the caller checks the record's
  // attach id under the registry lock (stop_thread).
  M* m = __atomic_load_n(&g->m, __ATOMIC_RELAXED);
  if (!m) return false;
  *r = m->rec;
  *attach_id = m->rec->attach_id;
  return true;
}

G* running_goroutine(ThreadRecord* r) {
  auto* m = static_cast<M*>(r->m);
  return m ? m->curg : nullptr;
}

bool goroutine_needs_scan(G* g, uint32_t gen) { return g->scan_gen.load(std::memory_order_acquire) != gen; }
void goroutine_scanned(G* g, uint32_t gen, MarkWorker& w) {
  w.mark(reinterpret_cast<uintptr_t>(g->fn));
  g->scan_gen.store(gen, std::memory_order_release);
}

}  // namespace gort::internal
