#include "runtime/gc/mgcmark.hpp"

#include <gort/heap.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/core/lock.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/regs.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mcheckmark.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/gc/roots.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/sched/stack.hpp"

namespace gort::internal {

namespace {

// GODEBUG=gccheckmark=1: scans zero the dead stack below what they scanned (mgcmark.hpp). Set at
// start, and toggled by tests while threads read it: a relaxed atomic (a plain load on x86-64).
std::atomic<bool> g_checkmark{false};
bool checkmark_on() { return g_checkmark.load(std::memory_order_relaxed); }
// Set while checkmark's own mark scans the roots: stacks are then scanned from their stack
// pointers exactly. The x86-64 red zone below a stopped thread's stack pointer holds what its
// leaf function keeps there, but also whatever dead callees left; a live word there came from the
// heap or an allocation after the stack was scanned, which the barrier covers, while a stale one
// would be reported as a miss.
bool g_checkmark_scanning = false;
uintptr_t red_zone() { return g_checkmark_scanning ? 0 : kRedZone; }
// What park()'s callees (futex calls, a sanitizer's runtime) may use below its frame while the
// thread is stopped.
constexpr uintptr_t kParkCalleeBytes = 8 << 10;

// The registers a stopped thread's record saved (general purpose and, on x86-64, the vector
// ones), scanned conservatively; and those of the code an injected call interrupted, when the
// call has not started yet (ThreadRecord::injected_lo).
void scan_saved_registers(ThreadRecord* r, MarkWorker& w) {
  auto regs = reinterpret_cast<uintptr_t>(&r->regs);
  w.scan_conservative(regs, regs + sizeof r->regs);
#if defined(__x86_64__)
  auto vector = reinterpret_cast<uintptr_t>(r->fpregs);
  w.scan_conservative(vector, vector + r->fpregs_bytes);
#endif
  if (r->injected_hi > r->injected_lo) w.scan_conservative(r->injected_lo, r->injected_hi);
}

// The stacks of a stopped thread: its own (`own`) and, for an M, the goroutine it runs
// (`goroutine`). The registers go with whichever runs; they are scanned with either part.
uint64_t scan_thread_record(ThreadRecord* r, MarkWorker& w, bool own, bool goroutine) {
  uint64_t bytes = 0;
  auto scan = [&](uintptr_t lo, uintptr_t hi) {
    w.scan_conservative(lo, hi);
    bytes += hi - lo;
  };
  // A stopped thread's stack pointer is on the goroutine it runs (an M) or on its own stack;
  // with split stacks either may continue in segments, which the walk follows. Stopped inside a
  // program's handler on the alternate signal stack, it is the stack pointer of the code that
  // handler interrupted, when the kernel's frame told it (else the walk, finding the stack
  // pointer on none of those stacks, visits them whole).
  const uintptr_t stopped_sp = r->interrupted_sp ? r->interrupted_sp : r->stopped_sp;
  if (r->g_stack_hi) {  // an M running a goroutine: the goroutine's stack, then the M's own
    // Stopped on the M's stack (on_system_stack): the goroutine's stack is live from where it
    // left it, the M's from the stopped stack pointer (the goroutine's callee-saved registers
    // may be spilled there).
    bool on_m = r->g_sys_sp && stopped_sp >= r->stack_lo && stopped_sp < r->stack_hi;
    if (goroutine) {
      uintptr_t g_sp = on_m ? r->g_sys_sp : stopped_sp;
      for_each_stack_range(g_sp, red_zone(), r->g_stack_lo, r->g_stack_hi, r->split_segments, r->split_current, scan,
                           g_checkmark_scanning);
      // The next spare segment too: a deeper call reuses it, and its uninitialized slots would
      // show the checking mark words left there before this scan. Safe while the goroutine is
      // stopped: under checkmark, goroutines block signals inside __morestack (stack.cpp), the
      // only code that maps, unmaps or fills spare segments while the goroutine runs.
      // Only while no code runs there: a thread stopped synchronously (suspend_self, or
      // blocked_wait) still runs below g_sp, in park's wait loop or in the wait, whose callees
      // may go deep (a TSan build runs deferred signal handlers inside its atomic operations:
      // zeroed under them, a return popped address 0, 1 run in 50 of the graph mutator under
      // checkmark); such a thread zeroes its own dead frames once it goes on (suspend_self,
      // blocked_wait). Stopped asynchronously, the handler runs on the alternate signal stack,
      // or below g_sp on this one (park_sp), where its frames are kept.
      if (checkmark_on() && (on_m || r->stopped_async)) {
        uintptr_t keep = kRedZone;
        if (!on_m && r->park_sp && r->park_sp < g_sp) keep = g_sp - r->park_sp + kParkCalleeBytes;
        stack_zero_dead(g_sp, keep, r->g_stack_lo, r->g_stack_hi, r->split_segments, r->split_current, true);
      }
    }
    if (own || (goroutine && on_m)) scan(on_m ? stopped_sp - red_zone() : r->g0_sp, r->stack_hi);
    // Checkmark: nothing stale below the M's scanned range either (on_system_stack zeroes what
    // its call leaves; this covers the dead frames of that call so far). Only while the handler
    // runs elsewhere: a synchronous stop's own frames lie below the stack pointer.
    if (on_m && checkmark_on() && !g_checkmark_scanning && r->stopped_on_alt_stack)
      scrub_stack_below(stopped_sp - kRedZone, r->stack_lo);
  } else if (own) {
    for_each_stack_range(stopped_sp, red_zone(), r->stack_lo, r->stack_hi, r->split_segments, r->split_current, scan,
                         g_checkmark_scanning);
    // Checkmark: the words between the handler and the stopped stack pointer (the kernel's
    // signal frame, which does not overwrite every byte: XSAVE skips unused register states, and
    // the handler's frames) are dead after the stop but may hold stale pointers written before
    // it, which later frames can expose without writing over them. Scanning them keeps the rule
    // the checking mark relies on: nothing stale below the scanned range (the handler zeroes what
    // lies below itself, see park).
    uintptr_t below = stopped_sp - red_zone();
    uintptr_t handler_sp = r->stopped_async ? r->park_sp : 0;
    if (checkmark_on() && !g_checkmark_scanning && handler_sp && handler_sp < below && below - handler_sp < (64 << 10))
      scan(handler_sp, below);
  }
  if (own || goroutine) {
    scan_saved_registers(r, w);
    // Stopped inside a signal handler of the program's: its frames, and the registers of the
    // code it interrupted, saved by the kernel above them on the alternate stack.
    if (r->interrupted_handler_hi > r->stopped_sp) scan(r->stopped_sp - red_zone(), r->interrupted_handler_hi);
  }
  return bytes;
}

// ---- concurrent root jobs -------------------------------------------------------------------

struct ThreadJob {
  ThreadRecord* r;
  uint64_t attach_id;
};

struct Jobs {
  SpinLock lock;
  uint32_t gen = 0;
  bool roots_table = false, specials = false;  // claimed
  std::vector<ThreadJob> threads;
  size_t next_thread = 0;
  G* next_g = nullptr;
  bool goroutines_done = false;
  std::atomic<int> running{0};  // jobs claimed and not finished
  std::atomic<uint64_t> stack_bytes{0}, globals_bytes{0};
} g_jobs;

enum class Job { None, RootsTable, Specials, Thread, Goroutine };

Job claim(ThreadJob* t, G** g) {
  LockGuard lk(g_jobs.lock);
  Job j = Job::None;
  if (!g_jobs.roots_table) {
    g_jobs.roots_table = true;
    j = Job::RootsTable;
  } else if (!g_jobs.specials) {
    g_jobs.specials = true;
    j = Job::Specials;
  } else if (g_jobs.next_thread < g_jobs.threads.size()) {
    *t = g_jobs.threads[g_jobs.next_thread++];
    j = Job::Thread;
  } else if (g_jobs.next_g) {
    *g = g_jobs.next_g;
    g_jobs.next_g = allg_next(*g);
    j = Job::Goroutine;
  }
  if (j != Job::None) g_jobs.running.fetch_add(1, std::memory_order_acq_rel);
  return j;
}

void scan_thread_job(ThreadJob t, MarkWorker& w, uint32_t gen) {
  stop_thread(t.r, t.attach_id, [&](ThreadRecord* r) {
    if (r->scan_gen.load(std::memory_order_relaxed) == gen) return;
    G* g = running_goroutine(r);
    bool with_goroutine = g && goroutine_needs_scan(g, gen);
    g_jobs.stack_bytes.fetch_add(scan_thread_record(r, w, /*own=*/true, with_goroutine), std::memory_order_relaxed);
    if (with_goroutine) goroutine_scanned(g, gen, w);
    r->scan_gen.store(gen, std::memory_order_release);
  });
}

void scan_goroutine_job(G* g, MarkWorker& w, uint32_t gen) {
  for (;;) {
    uint64_t bytes = 0;
    bool done = scan_parked_goroutine(g, gen, w, &bytes);
    g_jobs.stack_bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (done) return;
    ThreadRecord* r;
    uint64_t id;
    if (!goroutine_thread(g, &r, &id)) continue;  // it just stopped running: scan it in place
    stop_thread(r, id, [&](ThreadRecord* rec) {
      if (running_goroutine(rec) != g || !goroutine_needs_scan(g, gen)) return;
      g_jobs.stack_bytes.fetch_add(scan_thread_record(rec, w, /*own=*/false, /*goroutine=*/true),
                                   std::memory_order_relaxed);
      goroutine_scanned(g, gen, w);
    });
    if (!goroutine_needs_scan(g, gen)) return;
  }
}

}  // namespace

void set_checkmark_scanning(bool on) { g_checkmark_scanning = on; }
bool checkmark_scanning() { return g_checkmark_scanning; }

void set_checkmark(bool on) {
  g_checkmark.store(on, std::memory_order_relaxed);
  set_scrub_when_stopped(on);
}
bool checkmark_scrubs_stacks() { return checkmark_on(); }

std::atomic<uint32_t> g_mark_gen{0};

namespace {
// Scans the stack the calling code came from and the registers it holds, with the callee-saved
// ones spilled into this very frame (__builtin_unwind_init), which the scan covers: [sp, top).
__attribute__((noinline)) void scan_own_stack_from_here(MarkWorker& w, uint32_t gen) {
  __builtin_unwind_init();
  // The stack pointer itself: a frame's unused slots may hold stale words from earlier calls,
  // which the checking mark would find later if neither scanned nor zeroed.
  uintptr_t sp = stack_pointer();
  asm volatile("" : : "r"(sp) : "memory");
  ThreadRecord* r = t_local.record;
  void *segments, *current;
  stack_current_segments(&segments, &current);
  uint64_t bytes = 0;
  auto scan = [&](uintptr_t lo, uintptr_t hi) {
    w.scan_conservative(lo, hi);
    bytes += hi - lo;
  };
  if (G* g = running_goroutine(r)) {
    // On the M's stack (on_system_stack): the goroutine's stack from where it left it, and the
    // M's from here up, where the goroutine's callee-saved registers are spilled.
    if (!goroutine_needs_scan(g, gen)) return;
    uintptr_t g_sp = r->g_sys_sp ? r->g_sys_sp : sp;
    for_each_stack_range(g_sp, kRedZone, r->g_stack_lo, r->g_stack_hi, segments, current, scan);
    if (r->g_sys_sp) scan(sp, r->stack_hi);
    goroutine_scanned(g, gen, w);
    // Checkmark (see checkmark_verify): nothing stale left below what was scanned. The
    // goroutine's stack is idle while this runs on the M's; otherwise zero below this frame.
    if (checkmark_on()) {
      if (r->g_sys_sp) stack_zero_dead(g_sp, kRedZone, r->g_stack_lo, r->g_stack_hi, segments, current, true);
      scrub_stack(64 << 10);  // the stack this runs on: the goroutine's, or the M's below this frame
    }
  } else {
    if (r->scan_gen.load(std::memory_order_relaxed) == gen) return;
    for_each_stack_range(sp, 0, r->stack_lo, r->stack_hi, segments, current, scan);
    r->scan_gen.store(gen, std::memory_order_release);
    if (checkmark_on()) scrub_stack(64 << 10);
  }
  g_jobs.stack_bytes.fetch_add(bytes, std::memory_order_relaxed);
}
}  // namespace

void scan_own_stack() {
  ThreadRecord* r = t_local.record;
  if (!r || !r->scan_stack || current_stack_black()) return;
  CriticalSection cs;  // a stop of this thread for the same scan waits; it then finds it done
  work_begin();
  {
    MarkWorker w;
    scan_own_stack_from_here(w, g_mark_gen.load(std::memory_order_relaxed));
    cycle_mark_account(w);
  }
  work_end();
  // The scan recorded the callee-saved registers (spilled into its frame), not the caller-saved
  // ones, dead across this call: whatever stale pointer they still hold must not outlive the scan
  // unseen (core/regs.hpp), as after any stop that records no registers.
  clear_caller_saved_registers();
}

void scan_range_of_black_stack(uintptr_t lo, uintptr_t hi) {
  if (!gc_marking() || !current_stack_black() || lo >= hi) return;
  CriticalSection cs;  // the mark cannot end meanwhile
  if (!gc_marking()) return;
  work_begin();
  {
    MarkWorker w;
    w.scan_conservative(lo, hi);
    cycle_mark_account(w);
  }
  work_end();
}

RootBytes scan_all_roots(MarkWorker& w, bool m_stacks) {
  RootBytes b;
  for_each_thread([&](ThreadRecord* r) {
    if (r->scan_stack) b.stacks += scan_thread_record(r, w, m_stacks || !r->m, true);
  });
  mark_goroutines(w, &b.stacks);
  b.globals = scan_roots_table(w);
  mark_special_roots(w);
  drain_shaded(w);
  return b;
}

void roots_prepare(uint32_t gen) {
  cycle_mark_reset();
  if (checkmark_on()) checkmark_begin_cycle();
  LockGuard lk(g_jobs.lock);
  g_jobs.gen = gen;
  g_jobs.roots_table = g_jobs.specials = false;
  g_jobs.threads.clear();
  // An M's own stack holds no managed pointer the mark needs: the scheduler keeps none there,
  // and the runtime's slow paths it runs for a goroutine (on_system_stack) keep theirs only
  // inside critical sections, or spill the goroutine's registers, which the goroutine's own scan
  // covers. So Ms are scanned through the goroutines they run, and only other threads are jobs.
  for_each_thread([](ThreadRecord* r) {
    if (r->scan_stack && !r->m) g_jobs.threads.push_back({r, r->attach_id});
    else r->scan_gen.store(g_jobs.gen, std::memory_order_relaxed);
  });
  g_jobs.next_thread = 0;
  g_jobs.next_g = allg_first();
  g_jobs.running.store(0, std::memory_order_relaxed);
  g_jobs.stack_bytes.store(0, std::memory_order_relaxed);
  g_jobs.globals_bytes.store(0, std::memory_order_relaxed);
  set_spawn_scan_gen(gen);
  set_attach_scan_gen(gen);
  g_mark_gen.store(gen, std::memory_order_relaxed);
}

bool root_job(MarkWorker& w) {
  ThreadJob t{};
  G* g = nullptr;
  Job j = claim(&t, &g);
  if (j == Job::None) return false;
  uint32_t gen = g_jobs.gen;
  switch (j) {
    case Job::RootsTable: g_jobs.globals_bytes.fetch_add(scan_roots_table(w), std::memory_order_relaxed); break;
    case Job::Specials: mark_special_roots(w); break;
    case Job::Thread: scan_thread_job(t, w, gen); break;
    case Job::Goroutine: scan_goroutine_job(g, w, gen); break;
    case Job::None: break;
  }
  g_jobs.running.fetch_sub(1, std::memory_order_acq_rel);
  return true;
}

bool roots_done() {
  LockGuard lk(g_jobs.lock);
  return g_jobs.roots_table && g_jobs.specials && g_jobs.next_thread == g_jobs.threads.size() && !g_jobs.next_g &&
         g_jobs.running.load(std::memory_order_acquire) == 0;
}

RootBytes roots_scanned() {
  return {g_jobs.stack_bytes.load(std::memory_order_relaxed), g_jobs.globals_bytes.load(std::memory_order_relaxed)};
}

void scan_stopped_registers(MarkWorker& w) {
  for_each_thread([&](ThreadRecord* r) {
    if (r->scan_stack) scan_saved_registers(r, w);
  });
}

// ---- write-barrier buffers --------------------------------------------------------------------

size_t flush_barrier_buffers_concurrently() {
  // Threads whose buffer looks empty are not stopped: an entry appended meanwhile is flushed at
  // mark termination, with the world stopped. This round only keeps that flush short.
  std::vector<ThreadJob> threads;
  for_each_attached([&](ThreadRecord* r) {
    if (r->cache && std::atomic_ref<uint32_t>(r->cache->wb.n).load(std::memory_order_relaxed))
      threads.push_back({r, r->attach_id});
  });
  size_t n = 0;
  for (ThreadJob t : threads) {
    stop_thread(t.r, t.attach_id, [&](ThreadRecord* r) {
      if (!r->cache) return;
      n += r->cache->wb.n;
      wb_flush(r->cache->wb);
    });
  }
  MarkWorker w;
  work_begin();
  n += drain_shaded(w);
  cycle_mark_account(w);
  w.publish();
  work_end();
  return n;
}

size_t flush_barrier_buffers_stopped() {
  size_t n = 0;
  for_each_thread([&](ThreadRecord* r) {
    if (!r->cache) return;
    n += r->cache->wb.n;
    wb_flush(r->cache->wb);
  });
  MarkWorker w;
  n += drain_shaded(w);
  cycle_mark_account(w);
  return n;
}

}  // namespace gort::internal
