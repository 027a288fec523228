#include "runtime/gc/mgc.hpp"

#include <gort/heap.hpp>

#include <mutex>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/alloc/scavenger.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/assist.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/limiter.hpp"
#include "runtime/gc/markworkers.hpp"
#include "runtime/gc/mcheckmark.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/gc/sweep.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/sched/segments.hpp"
#include "runtime/stats/gctrace.hpp"
#include "runtime/stats/mprof.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
GcState g_state;
int g_procs = 1;
int g_stoptheworld = 0;
bool g_checkmark = false;
uint32_t g_gen = 0;  // concurrent cycles started: each stack's scan is stamped with it
RootBytes g_stw_roots;

// Requests, and the cycles' progress: waiters of GC() sleep on g_done.
std::mutex g_request_lock;
uint32_t g_started = 0;        // cycles begun (under g_request_lock)
uint32_t g_forced_until = 0;   // a forced cycle must begin while g_started < this
std::atomic<uint32_t> g_wake{0};
std::atomic<uint32_t> g_done{0};
std::atomic<bool> g_heap_request{false};
// Bumped when a mark begins and when a cycle ends: threads past the goal wait on it (futex).
std::atomic<uint32_t> g_mark_events{0};
std::atomic<bool> g_stop{false};
pthread_t g_thread;

void announce_mark_event() {
  g_mark_events.fetch_add(1, std::memory_order_release);
  futex_wake(&g_mark_events);
}

// Flushes every thread's cache (spans back to the central lists, counts to the statistics);
// with `new_cycle`, also forgets what the last cycle left in barrier buffers and assist debts.
void flush_caches(bool new_cycle) {
  for_each_thread([&](ThreadRecord* r) {
    if (!r->cache) return;
    cache_flush(r->cache);
    if (new_cycle) {
      wb_reset(r->cache->wb);
      r->cache->assist_debt = 0;
    }
  });
}

void record_pause(GcTrace& tr, uint64_t pause, bool forced, uint64_t gc_cpu) {
  auto& st = stats();
  uint64_t end_unix = tr.start_unix_ns + (tr.t_end - tr.t_start);
  {
    StatsUpdate batch;  // readers do not stop the world (stats/memstats.cpp)
    auto set = [](auto& field, auto value) { std::atomic_ref(field).store(value, std::memory_order_relaxed); };
    set(st.pause_ns[st.numgc % 256], pause);
    set(st.pause_end[st.numgc % 256], end_unix);
    set(st.pause_total_ns, st.pause_total_ns + pause);
    set(st.last_gc_unix_ns, end_unix);
    if (forced) set(st.numforcedgc, st.numforcedgc + 1);
    set(st.numgc, st.numgc + 1);
  }
  st.gc_cpu_ns.fetch_add(gc_cpu, std::memory_order_relaxed);
  tr.numgc = st.numgc;
  tr.gc_cpu_fraction = gc_cpu_fraction(tr.t_end);
}

void after_cycle(const GcTrace& tr) {
  profile_flush();
  wake_sweeper();
  wake_scavenger();
  segments_release_idle();  // stack segments idle for a whole cycle go back to the OS
  if (pending_finalizers()) wake_finalizer();
  if (gctrace_enabled()) print_gctrace(tr);
}

// GODEBUG=gcstoptheworld=1: the whole mark with the world stopped, on every core.
void run_cycle_stopped(bool forced) {
  GcTrace tr;
  tr.start_unix_ns = unixnano();
  uint64_t cpu0 = thread_cpu_ns();
  tr.t_start = nanotime();
  tr.goal = current_goal();
  tr.heap0 = g_state.heap_live.load(std::memory_order_relaxed);
  std::unique_lock wl(world_lock());
  stop_the_world();
  finish_sweep();
  flush_caches(true);
  tr.t_mark = nanotime();
  MarkResult mr = mark_phase([](MarkWorker& w) { g_stw_roots = scan_all_roots(w); });
  RootBytes roots = g_stw_roots;
  profile_next_cycle();  // before the sweep counts the dead samples' frees (stats/mprof.hpp)
  tr.t_mark_term = nanotime();
  tr.heap1 = g_state.heap_live.load(std::memory_order_relaxed);
  tr.heap2 = mr.marked_bytes;
  g_state.sweepgen.fetch_add(2, std::memory_order_relaxed);
  for (int spc = 0; spc < kNumSpanClasses; ++spc) central(spc).all_unswept();
  large_spans().all_unswept();
  g_state.heap_live.store(mr.marked_bytes, std::memory_order_relaxed);
  pacer_end_cycle(PacerInputs{mr.marked_bytes, roots.stacks, roots.globals});
  sweep_pacing_start(mr.marked_bytes, g_state.trigger.load(std::memory_order_relaxed));
  tr.stacks = roots.stacks;
  tr.globals = roots.globals;
  tr.procs = g_procs;
  tr.forced = forced;
  tr.mark_bg_cpu_ns = mr.cpu_ns;
  tr.t_end = nanotime();
  record_pause(tr, tr.t_end - tr.t_start, forced, thread_cpu_ns() - cpu0 + mr.worker_cpu_ns);
  start_the_world();
  wl.unlock();
  announce_mark_event();
  after_cycle(tr);
}

void run_cycle_concurrent(bool forced) {
  GcTrace tr;
  tr.start_unix_ns = unixnano();
  tr.t_start = nanotime();
  tr.goal = current_goal();
  tr.heap0 = g_state.heap_live.load(std::memory_order_relaxed);
  int procs = g_procs;

  // 1. Sweep termination.
  std::unique_lock wl(world_lock());
  limiter_start_transition(true, tr.t_start, procs);
  stop_the_world();
  finish_sweep();
  flush_caches(true);
  roots_prepare(++g_gen);
  reset_assist_state();
  uint64_t live_at_start = g_state.heap_live.load(std::memory_order_relaxed);
  CycleWorkers workers = pacer_start_cycle(tr.t_start, procs);
  write_barrier_enabled.store(true, std::memory_order_relaxed);
  tr.t_mark = nanotime();
  start_the_world();
  wl.unlock();
  announce_mark_event();
  limiter_finish_transition(tr.t_mark);
  if (pending_finalizers()) wake_finalizer();  // queued by finish_sweep's sweeps (sweep_specials)

  // 2. Concurrent mark, until nothing is left to mark anywhere.
  bg_mark_start(workers.dedicated, workers.fractional, procs);
  for (;;) {
    uint32_t seq = work_idle().prepare();
    limiter_update(nanotime());
    if (roots_done() && work_drained()) {
      // Every thread's barrier buffer, that thread stopped alone: nothing new means done.
      if (flush_barrier_buffers_concurrently() == 0 && roots_done() && work_drained()) break;
      continue;
    }
    work_idle().wait(seq, 1000000);  // the timeout: the CPU limiter's updates
  }
  bg_mark_stop();

  // 3. Mark termination.
  wl.lock();
  tr.t_mark_term = nanotime();
  limiter_start_transition(false, tr.t_mark_term, procs);
  stop_the_world();
  flush_barrier_buffers_stopped();
  flush_caches(false);  // allocate-black objects get their allocation bits
  MarkWorker self;
  scan_stopped_registers(self);
  cycle_mark_account(self);  // what the registers marked; drain_stopped counts the rest
  MarkResult last = drain_stopped(self);
  if (g_checkmark) checkmark_verify();
  profile_next_cycle();  // before the sweep counts the dead samples' frees (stats/mprof.hpp)
  write_barrier_enabled.store(false, std::memory_order_relaxed);
  uint64_t live_at_end = g_state.heap_live.load(std::memory_order_relaxed);
  BgMarkStats bg = bg_mark_stats();
  RootBytes roots = roots_scanned();
  CycleResult cr;
  // Marked: what the markers marked, plus everything allocated during the mark (black).
  cr.marked = cycle_marked_bytes() + last.marked_bytes +
              (live_at_end > live_at_start ? live_at_end - live_at_start : 0);
  cr.heap_live = live_at_end;
  uint64_t work = cycle_scan_work() + last.scan_work;
  cr.stacks = roots.stacks;
  cr.globals = roots.globals;
  cr.heap_scan = work > roots.stacks + roots.globals ? work - roots.stacks - roots.globals : 0;
  cr.mark_ns = tr.t_mark_term - tr.t_mark;
  cr.bg_ns = bg.dedicated_ns + bg.fractional_ns;
  cr.idle_ns = bg.idle_ns;
  tr.heap1 = live_at_end;
  tr.heap2 = cr.marked;
  g_state.sweepgen.fetch_add(2, std::memory_order_relaxed);
  for (int spc = 0; spc < kNumSpanClasses; ++spc) central(spc).all_unswept();
  large_spans().all_unswept();
  g_state.heap_live.store(cr.marked, std::memory_order_relaxed);
  pacer_end_cycle(cr, procs);
  sweep_pacing_start(cr.marked, g_state.trigger.load(std::memory_order_relaxed));
  tr.stacks = roots.stacks;
  tr.globals = roots.globals;
  tr.procs = procs;
  tr.forced = forced;
  tr.mark_assist_cpu_ns = cycle_assist_ns();
  tr.mark_bg_cpu_ns = cr.bg_ns;
  tr.mark_idle_cpu_ns = cr.idle_ns;
  tr.t_end = nanotime();
  uint64_t pause = (tr.t_mark - tr.t_start) + (tr.t_end - tr.t_mark_term);
  // As Go counts it: the stop-the-world phases on every processor, plus assists and dedicated
  // and fractional marking. Idle-time marking is left out: it used processors nothing else wanted.
  uint64_t gc_cpu = pause * static_cast<uint64_t>(procs) + tr.mark_assist_cpu_ns + cr.bg_ns;
  record_pause(tr, pause, forced, gc_cpu);
  start_the_world();
  wl.unlock();
  announce_mark_event();
  limiter_finish_transition(tr.t_end);
  after_cycle(tr);
}

void* collector_main(void*) {
  for (;;) {
    uint32_t seen = g_wake.load(std::memory_order_acquire);
    bool forced, run;
    {
      std::lock_guard g(g_request_lock);
      forced = g_started < g_forced_until;
      bool heap = g_heap_request.exchange(false, std::memory_order_acq_rel) &&
                  g_state.heap_live.load(std::memory_order_relaxed) >= g_state.trigger.load(std::memory_order_relaxed);
      run = forced || heap;
      if (run) ++g_started;
    }
    if (run) {
      if (g_stoptheworld > 0) run_cycle_stopped(forced);
      else run_cycle_concurrent(forced);
      g_done.fetch_add(1, std::memory_order_acq_rel);
      futex_wake(&g_done);
      continue;
    }
    if (g_stop.load(std::memory_order_acquire)) break;
    futex_wait(&g_wake, seen);
  }
  return nullptr;
}

void wake_collector() {
  g_wake.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&g_wake);
}

// Sweeps every span now, one per critical section, then waits for sweeps other threads have
// under way: runtime.GC returns with the heap swept (Go: for !isSweepDone() { Gosched() }).
// A span's sweep must never overlap a stop-the-world (it would clear the marks of the next
// cycle, or put the span back after that cycle's all_unswept): an attached thread sweeps inside a
// critical section, which defers its stop; a thread that is not attached is never stopped, so it
// holds the world lock instead, which every stop-the-world phase holds throughout.
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

void set_gc_debug(int stoptheworld, bool checkmark) {
  g_stoptheworld = stoptheworld;
  g_checkmark = checkmark;
  set_checkmark(checkmark);
}

namespace {
// Runs `wait` (futex waits on the collector's progress) as a blocked thread: a goroutine hands
// its processor to the others meanwhile, and a stop of the world does not wait for it.
template <class F>
void wait_for_collector(F&& wait) {
  enter_blocking();
  user_thread_blocked(true);
  blocked_wait(wait);
  user_thread_blocked(false);
  exit_blocking();
}

bool past_goal_unmarked() {
  return !gc_marking() && g_state.heap_live.load(std::memory_order_relaxed) >= current_goal() &&
         !cpu_limiter_limiting();
}

// Waits, a bounded time, until a mark begins (or a cycle ends) or the heap is back under its
// goal. Any mark event ends the wait: a whole short cycle may begin and end between two looks,
// and under a memory limit below the live heap the heap is past its goal again the moment a
// cycle ends, so waiting for "marking now" missed it and waited out the whole bound with no
// cycle requested (300 ms per cycle; 64 MiB live under GOMEMLIMIT=16MiB ran 4x slower, idle).
// A goroutine parks on a timer between looks, leaving its processor and its thread to others:
// blocking() here took a thread per waiting goroutine (handing the processor over starts an M
// when none is idle), and goroutines that allocate in a storm made hundreds of them (a helper's
// soak run: 26 -> 59 threads in 150 s at GOMAXPROCS=2; 190 with 2000 goroutines).
void wait_for_mark() {
  const uint32_t entered = g_mark_events.load(std::memory_order_acquire);
  auto waiting = [entered] { return past_goal_unmarked() && g_mark_events.load(std::memory_order_acquire) == entered; };
  if (on_goroutine() && t_front.critical == 0) {  // (a goroutine may park here)
    for (int i = 0; i < 1000 && waiting(); ++i) sleep_ns(100000);  // 100 ms at most
    return;
  }
  wait_for_collector([&] {
    for (int i = 0; i < 100 && waiting(); ++i)  // 100 ms at most: a cycle that does not come is no deadlock
      futex_wait(&g_mark_events, entered, 1000000);
  });
}
}  // namespace

void gc_start_heap() {
  if (!g_heap_request.exchange(true, std::memory_order_acq_rel)) wake_collector();
  // Go starts a cycle on the goroutine that crosses the trigger. Here the collector thread does,
  // and on a busy machine its wake-up can take milliseconds while the program allocates on: past
  // the goal itself with no mark begun, the allocating thread waits for the mark to start (a Go
  // goroutine would be stopping the world for it), unless the CPU limiter has switched assists
  // off. The heap then never runs past its goal unpaced.
  if (past_goal_unmarked()) [[unlikely]] wait_for_mark();
}

namespace {
__attribute__((noinline)) void request_cycle_and_wait() {
  uint32_t target;
  {
    std::lock_guard g(g_request_lock);
    // A cycle that begins after this call: the one running now (if any) does not count.
    target = g_started + 1;
    if (g_forced_until < target) g_forced_until = target;
  }
  wake_collector();
  // The cycle that completes `target` is the target-th; g_done counts completed cycles.
  wait_for_collector([target] {
    for (uint32_t d; static_cast<int32_t>((d = g_done.load(std::memory_order_acquire)) - target) < 0;)
      futex_wait(&g_done, d);
  });
  on_system_stack([] { sweep_now(); });  // a goroutine's small stack would grow by a segment for it
}
}  // namespace

void gc_run(GcReason) {
  if (t_front.critical) fatal("collection requested inside a runtime critical section");
  check_not_forked_child("a collection");
  // The caller blocks below in runtime frames laid over the dead frames of its earlier calls,
  // and the scan of its stack covers them: a slot those frames never write (padding, a local
  // used only on another path) would show a stale pointer from the program's last calls and keep
  // that object alive through every cycle GC() runs (GC() then never finalizes the last object
  // made). So the dead stack is wiped first, before any frame is built on it. This frame is
  // only a return address and a pushed register or two; the wait's frames lie in what is wiped.
  scrub_stack(16 << 10);
  request_cycle_and_wait();
}

void gc_start_threads(int procs) {
  g_procs = procs;
  g_stop.store(false);
  start_gc_workers(procs);
  start_sweeper();
  start_scavenger();
  start_destructor_thread();
  g_thread = start_service_thread(collector_main, nullptr, "gort-gc");
}

void gc_stop_threads() {
  g_stop.store(true);
  wake_collector();
  join_service_thread(g_thread);
  stop_destructor_thread();
  stop_scavenger();
  stop_sweeper();
  stop_gc_workers();
}

bool gc_quiescent() {
  std::lock_guard g(g_request_lock);
  return g_started == g_done.load(std::memory_order_acquire) && g_started >= g_forced_until &&
         !g_heap_request.load(std::memory_order_acquire) && pending_finalizers() == 0;
}

}  // namespace gort::internal
