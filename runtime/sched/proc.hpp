// The goroutine scheduler (Go's proc.go): G, M and P.
//
//   G  a goroutine: its stack, saved context (Boost.Context fcontext), and the closure it runs.
//   M  an OS thread that runs goroutines; it is an attached thread (stopped by collections like
//      any other) whose own stack runs the scheduler loop (Go's g0).
//   P  a processor: what an M needs to run Go code. GOMAXPROCS of them, each with a local run
//      queue (a 256-entry ring, lock-free for its owner and for thieves) and a runnext slot.
//
// An M with a P loops: runnext, local queue (the global queue every 61st tick, for fairness),
// the global queue, then stealing half of another P's queue; when all fail it gives its P back
// and parks on a futex. Making a goroutine runnable wakes an idle M when there are idle Ps and no
// M is already spinning (looking for work).
//
// Switches happen inside a critical section that the switching side enters and the resumed side
// leaves, so a collection never stops an M halfway through one: the M's ThreadRecord always says
// which stack it runs on. A goroutine blocks with park(lock): the lock is released by the M's
// scheduler loop after the goroutine's context is saved, so whoever takes the lock and finds the
// goroutine in a wait queue can make it runnable at once (Go's gopark unlock function).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "runtime/core/lock.hpp"

namespace gort::internal {

struct G;
struct GoClosureBase;

// One blocked goroutine or OS thread, linked into a wait queue by whoever will wake it. A select
// parks with one Waiter per case, sharing `select_done` (the first waker claims it; the others
// skip the stale entries) and, for a thread, one wake word.
struct Waiter {
  G* g = nullptr;                            // the goroutine, or null for an attached OS thread
  std::atomic<uint32_t> own_wake{0};
  std::atomic<uint32_t>* wake = &own_wake;   // what a thread sleeps on
  std::atomic<uint32_t>* select_done = nullptr;
  Waiter* next = nullptr;
  void* data = nullptr;                      // what the waker hands over (channel element, ...)
  bool ok = false;                           // the waker's verdict (a value was delivered, ...)
  int index = 0;                             // a select case's position
  const char* wait_reason = "";              // Go's waitReason ("chan receive"), for dumps
};

// Prepares w for the calling goroutine or thread.
void init_waiter(Waiter& w);
// Claims a queued waiter for waking: false when it belongs to a select another case already won.
// A select's shared word then records which case won (index + 1).
inline bool claim(Waiter& w) {
  if (!w.select_done) return true;
  uint32_t none = 0;
  return w.select_done->compare_exchange_strong(none, static_cast<uint32_t>(w.index) + 1, std::memory_order_acq_rel);
}
// Blocks until ready(w). Must be called holding `lock` inside exactly one critical section
// (enter_critical(); lock.lock();); returns with the lock released and the section left.
void park(Waiter& w, SpinLock& lock);
// The same, with `unlock(arg)` releasing whatever the caller holds (a select's channels).
void park_with(Waiter& w, void (*unlock)(void*), void* arg);
// Makes the waiter runnable (call after taking it off its queue and claiming it).
void ready(Waiter& w);

// A cheap per-thread pseudo-random number (xorshift): steal order, select's poll order.
uint32_t fastrand();

// Starts a goroutine running c (a managed closure, kept alive by the goroutine). A system
// goroutine (the runtime's own) does not count in NumGoroutine, as in Go.
void spawn(GoClosureBase* c);
void spawn_goroutine(GoClosureBase* c, bool system);
void yield();
// Whether the caller runs on a goroutine (not on an attached thread, nor on its M's own stack).
bool on_goroutine();
int num_goroutine();
int gomaxprocs(int n);
void sleep_ns(int64_t ns);

// Go's goroutine dump: "goroutine 7 [chan receive]:" and its C++ stack for each of the program's
// goroutines, and each attached program thread parked in a gort wait (without a stack). World running (sysmon's deadlock
// report, SIGQUIT, /debug/pprof/goroutine?debug=2). `dying`: see for_each_goroutine.
std::string goroutine_dump(bool dying = false);

// Each of the program's goroutines (not the runtime's own), in id order, with its state (Go's
// wait reason, "runnable", "running" or "syscall") and its stack (return addresses, innermost
// first): a switched-out goroutine's from where it left, the calling goroutine's from the call, a
// goroutine running on another thread's from where that thread is stopped for the walk (alone,
// as for a stack scan). n == 0 when no stack could be walked (the goroutine moved on meanwhile).
// The world keeps running, but is stopped and restarted once first: from then on until the walks
// end, every M takes the scan handshake before it resumes a goroutine (execute), so no parked
// stack is resumed while it is walked. `dying` (sysmon's fatal dumps) skips that stop: the
// process is about to exit, and sysmon must not wait for the world lock.
struct GoroutineRecord {
  int64_t id;
  const char* state;
  const uintptr_t* pcs;
  int n;
};
void for_each_goroutine(void (*fn)(const GoroutineRecord&, void*), void* arg, bool dying = false);
template <class F>
void for_each_goroutine(F&& fn, bool dying = false) {
  for_each_goroutine([](const GoroutineRecord& g, void* f) { (*static_cast<std::remove_reference_t<F>*>(f))(g); }, &fn,
                     dying);
}

// Preemption (preempt.hpp): on unless GODEBUG=asyncpreemptoff=1; how many goroutines were
// preempted so far.
void set_async_preempt(bool on);
uint64_t async_preemptions();

// Scheduler lifetime (Runtime).
void sched_start(int procs);
void sched_stop();

// Go's systemstack: on a goroutine, runs fn(arg) on its M's own stack (below where the scheduler
// loop left it), with the split-stack guard at 0; elsewhere just calls it. For the runtime's slow
// paths that call into libc (creating threads, mapping memory, a collection, ReadMemStats): on a
// goroutine's stack each would make libgcc map a 1 MiB segment for it (stack.hpp). fn must not
// park, switch or throw. The collector scans both stacks meanwhile (ThreadRecord::g_sys_sp).
void on_system_stack(void (*fn)(void*) noexcept, void* arg);
template <class F>
void on_system_stack(F&& f) {
  // noexcept: an exception must not unwind through the switch of stacks (it would leave the
  // goroutine with the M's guard); one thrown in f terminates.
  on_system_stack([](void* p) noexcept { (*static_cast<std::remove_reference_t<F>*>(p))(); }, &f);
}

// Called on the M's own stack (on_system_stack) for a goroutine: notes the segments of its stack
// now, as a switch would (StackInuse then includes what the caller itself grew).
void note_calling_goroutine_stack();

// Runs fn(arg) outside the scheduler's accounting: the goroutine's P is handed to another M for
// the duration (Go's entersyscall / exitsyscall).
void enter_blocking();
void exit_blocking();

// The collector's view (world stopped): the live stack range of every goroutine that is not
// running, and every goroutine's closure.
class MarkWorker;
struct ThreadRecord;
void mark_goroutines(MarkWorker& w, uint64_t* stack_bytes);

// Processors with nothing to run, less one for each of the program's own threads that computes
// (they use a core too): the collector's idle mark workers use that many.
int idle_procs();

// Concurrent stack scanning (gc/mgcmark.cpp), each goroutine once per cycle `gen`.
// Goroutines started from now on count as scanned in `gen` (their stacks start empty).
void set_spawn_scan_gen(uint32_t gen);
// The goroutines that exist now, newest first (goroutines are never unlinked).
G* allg_first();
G* allg_next(G* g);
// Scans g's stack and closure in place unless g runs (it cannot start running meanwhile);
// true when g needs nothing more this cycle, false when it runs.
bool scan_parked_goroutine(G* g, uint32_t gen, MarkWorker& w, uint64_t* stack_bytes);
// g runs: the thread that runs it, to be stopped; false if it does not run any more.
bool goroutine_thread(G* g, ThreadRecord** r, uint64_t* attach_id);
// With r stopped: the goroutine it runs, if any.
G* running_goroutine(ThreadRecord* r);
bool goroutine_needs_scan(G* g, uint32_t gen);
// Records that g's stack was scanned in `gen` (by its stopped thread's scan) and marks its closure.
void goroutine_scanned(G* g, uint32_t gen, MarkWorker& w);

}  // namespace gort::internal
