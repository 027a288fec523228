// Runtime lifetime: reading the environment, starting and stopping the runtime's threads.
//
// The heap is process-wide and outlives any one Runtime: a Runtime starts the collector's threads
// and attaches its thread; its destructor stops them. Objects stay valid (and are still counted)
// until a later Runtime collects them. One Runtime at a time.
#include <gort/pprof.hpp>
#include <gort/runtime.hpp>

#include <unistd.h>

#include <mutex>
#include <stdexcept>
#include <thread>

#include "runtime/core/env.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/sigstack.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/stats/gctrace.hpp"

namespace gort {

namespace {
std::mutex g_runtime_lock;
bool g_running = false;

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}
}  // namespace

Runtime::Runtime() : Runtime(Options{}) {}

Runtime::Runtime(const Options& opts) {
  using namespace internal;
  std::lock_guard g(g_runtime_lock);
  if (g_running) throw std::logic_error("gort: a gort::Runtime is already running in this process");
  Environment env = read_environment();  // throws on a malformed GOMEMLIMIT, before anything starts
  static std::once_flag once;
  std::call_once(once, [] {
    set_runtime_start_ns(nanotime());
  });
  set_gc_percent(env.gc_percent);
  set_memory_limit(env.memory_limit);
  set_gctrace(env.gctrace);
  set_gc_debug(env.gcstoptheworld, env.gccheckmark > 0);
  set_async_preempt(env.asyncpreemptoff == 0 && !kThreadSanitizer);  // see sched/proc.cpp
  if (env.memprofilerate >= 0) MemProfileRate = env.memprofilerate;  // as Go applies it before main
  int procs = opts.gomaxprocs > 0 ? opts.gomaxprocs : env.gomaxprocs > 0 ? env.gomaxprocs : hardware_threads();
  add_signal_stack_to_handlers();  // the program's handlers run on an M's alternate stack, not a goroutine's
  attach_current_thread();
  gc_start_threads(procs);
  sched_start(procs);
  start_finalizer_thread();  // a goroutine: needs the scheduler
  g_running = true;
}

Runtime::~Runtime() {
  using namespace internal;
  std::lock_guard g(g_runtime_lock);
  stop_finalizer_thread();
  sched_stop();
  gc_stop_threads();
  detach_current_thread();
  g_running = false;
}

AttachThread::AttachThread() {
  using namespace internal;
  // Inside a critical section from the moment the thread is registered until its stack is
  // scanned: a mark that is running cannot end in between. (It did: a mark termination, and
  // checkmark's stop-the-world mark after it, stopped the thread on its way out of
  // attach_current_thread, registered with a stack the concurrent mark had not scanned; checkmark
  // then reported the dead words of its frames, ~1 run in 7 of the stress tests under checkmark.)
  attach_current_thread(/*scan_stack=*/true, /*program=*/true, /*critical=*/true);
  // Checkmark (gc/mgcmark.hpp): attach_current_thread zeroed the stack below itself, but not its
  // own frame, now dead: on a stack the C library recycled from a thread that exited, that
  // frame's unwritten slots still hold the old thread's words, which the frames this thread
  // builds there later would expose to the checking mark but not to a concurrent scan made while
  // they were dead (a false report, seen in CI: the gc stress test's tree nodes, read from the
  // memstats stress test's reader thread).
  if (scrub_when_stopped()) [[unlikely]] scrub_stack(64 << 10);
  // Attached while a mark runs: the thread scans its own stack now (the frames of the code that
  // attached it), still inside the critical section, so that the mark cannot end meanwhile.
  if (t_local.record->attach_depth == 1 && gc_marking()) scan_own_stack();
  leave_critical();
}
AttachThread::~AttachThread() { internal::detach_current_thread(); }

}  // namespace gort
