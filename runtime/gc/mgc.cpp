#include "runtime/gc/mgc.hpp"

#include <sched.h>

#include <mutex>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/alloc/scavenger.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mark.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/gc/roots.hpp"
#include "runtime/gc/sweep.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/sched/stack.hpp"
#include "runtime/stats/gctrace.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
GcState g_state;
int g_procs = 1;
uint64_t g_stack_scan_bytes = 0;
uint64_t g_globals_scan_bytes = 0;

// Roots: every attached thread's live stack and saved registers (conservatively), the Root<T>
// slots, and whatever the write barrier shaded.
void scan_roots(MarkWorker& w) {
  uint64_t stack_bytes = 0;
  for_each_thread([&](ThreadRecord* r) {
    if (!r->scan_stack) return;
    auto scan = [&](uintptr_t lo, uintptr_t hi) {
      w.scan_conservative(lo, hi);
      stack_bytes += hi - lo;
    };
    // A stopped thread's stack pointer is on the goroutine it runs (an M) or on its own stack;
    // with split stacks either may continue in segments, which the walk follows.
    if (r->g_stack_hi) {  // an M running a goroutine: the goroutine's stack, then the M's own
      // Stopped on the M's stack (on_system_stack): the goroutine's stack is live from where it
      // left it, the M's from the stopped stack pointer.
      bool on_m = r->g_sys_sp && r->stopped_sp >= r->stack_lo && r->stopped_sp < r->stack_hi;
      uintptr_t g_sp = on_m ? r->g_sys_sp : r->stopped_sp;
      for_each_stack_range(g_sp, kRedZone, r->g_stack_lo, r->g_stack_hi, r->split_segments, r->split_current, scan);
      scan(on_m ? r->stopped_sp - kRedZone : r->g0_sp, r->stack_hi);
    } else {
      for_each_stack_range(r->stopped_sp, kRedZone, r->stack_lo, r->stack_hi, r->split_segments, r->split_current,
                           scan);
    }
    auto regs = reinterpret_cast<uintptr_t>(&r->regs);
    w.scan_conservative(regs, regs + sizeof r->regs);
#if defined(__x86_64__)
    auto xmm = reinterpret_cast<uintptr_t>(&r->fpregs._xmm);
    w.scan_conservative(xmm, xmm + sizeof r->fpregs._xmm);
#endif
  });
  mark_goroutines(w, &stack_bytes);
  g_stack_scan_bytes = stack_bytes;
  g_globals_scan_bytes = scan_roots_table(w);
  mark_special_roots(w);
  drain_shaded(w);
}

// The body of one cycle; the world lock is held. See mgc.hpp for the phases.
void run_cycle(bool forced) {
  auto& st = stats();
  GcTrace tr;
  tr.start_unix_ns = unixnano();
  uint64_t cpu0 = thread_cpu_ns();
  tr.t_start = nanotime();
  tr.goal = current_goal();
  tr.heap0 = g_state.heap_live.load(std::memory_order_relaxed);

  stop_the_world();
  // Sweep termination.
  finish_sweep();
  for_each_thread([](ThreadRecord* r) {
    if (r->cache) cache_flush(r->cache);
  });
  tr.t_mark = nanotime();

  // Mark.
  MarkResult mr = mark_phase(scan_roots);
  mr.marked_bytes += resolve_dead_specials();
  tr.t_mark_term = nanotime();

  // Mark termination: the marks become the truth; everything is to be swept.
  tr.heap1 = g_state.heap_live.load(std::memory_order_relaxed);
  tr.heap2 = mr.marked_bytes;
  g_state.sweepgen.fetch_add(2, std::memory_order_relaxed);
  for (int spc = 0; spc < kNumSpanClasses; ++spc) central(spc).all_unswept();
  large_spans().all_unswept();
  g_state.heap_live.store(mr.marked_bytes, std::memory_order_relaxed);
  pacer_end_cycle({mr.marked_bytes, g_stack_scan_bytes, g_globals_scan_bytes});
  tr.stacks = g_stack_scan_bytes;
  tr.globals = g_globals_scan_bytes;
  tr.procs = g_procs;
  tr.forced = forced;
  tr.mark_cpu_ns = mr.cpu_ns;

  tr.t_end = nanotime();
  uint64_t pause = tr.t_end - tr.t_start;
  uint64_t end_unix = tr.start_unix_ns + pause;
  st.pause_ns[st.numgc % 256] = pause;
  st.pause_end[st.numgc % 256] = end_unix;
  st.pause_total_ns += pause;
  st.last_gc_unix_ns = end_unix;
  ++st.numgc;
  if (forced) ++st.numforcedgc;
  // The collecting thread's own CPU covers the pause; mark_cpu_ns adds the workers'.
  st.gc_cpu_ns.fetch_add(thread_cpu_ns() - cpu0 + mr.worker_cpu_ns, std::memory_order_relaxed);
  tr.numgc = st.numgc;
  tr.gc_cpu_fraction = gc_cpu_fraction(tr.t_end);
  start_the_world();

  wake_sweeper();
  wake_scavenger();
  if (pending_finalizers()) wake_finalizer();
  if (gctrace_enabled()) print_gctrace(tr);
}

// Sweeps every span now, one per critical section, then waits for sweeps other threads have
// under way: runtime.GC returns with the heap swept (Go: for !isSweepDone() { Gosched() }).
// A span's sweep must never overlap a stop-the-world (it would clear the marks of the next
// cycle, or put the span back after that cycle's all_unswept): an attached thread sweeps inside a
// critical section, which defers its stop; a thread that is not attached is never stopped, so it
// holds the world lock instead, which every cycle holds throughout.
void sweep_now() {
  bool attached = current_thread_attached();
  for (int cursor = 0, more = 1; more;) {
    if (attached) {
      CriticalSection cs;
      more = sweep_one(&cursor);
    } else {
      std::lock_guard wl(world_lock());
      more = sweep_one(&cursor);
    }
  }
  while (sweeps_in_progress()) os_yield();
}
}  // namespace

GcState& gc_state() { return g_state; }
int gc_procs() { return g_procs; }

void gc_run(GcReason reason) {
  if (t_local.critical) fatal("collection requested inside a runtime critical section");
  on_system_stack([reason] {  // a goroutine's small stack would grow by a segment for it
    std::unique_lock wl(world_lock());
    if (reason == GcReason::Heap &&
        g_state.heap_live.load(std::memory_order_relaxed) < g_state.trigger.load(std::memory_order_relaxed))
      return;  // another thread collected meanwhile
    run_cycle(reason != GcReason::Heap);
    wl.unlock();
    if (reason != GcReason::Heap) sweep_now();
  });
}

void gc_start_threads(int procs) {
  g_procs = procs;
  start_mark_workers(procs - 1);
  start_sweeper();
  start_scavenger();
  start_destructor_thread();
}

void gc_stop_threads() {
  stop_destructor_thread();
  stop_scavenger();
  stop_sweeper();
  stop_mark_workers();
}

}  // namespace gort::internal
