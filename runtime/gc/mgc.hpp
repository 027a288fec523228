// The collector's cycle (Go's mgc.go): concurrent tri-colour mark and sweep.
//
// One cycle, run by the collector's own thread ("gort-gc") when the heap reaches the pacer's
// trigger or a program calls GC():
//   1. sweep termination (world stopped): finish sweeping the last cycle's spans, flush every
//      thread's allocation cache, prepare the root jobs, turn the write barrier and
//      allocate-black on;
//   2. concurrent mark (world running): background workers (markworkers.hpp) scan the roots and
//      stacks, each stack once (mgcmark.hpp), and trace grey objects; allocating threads assist
//      (assist.hpp); the barrier (mbarrier.cpp) shades what the program moves meanwhile. The mark
//      is done when no root job is left, no grey object is queued or held, and every thread's
//      barrier buffer, flushed with that thread stopped alone, adds nothing;
//   3. mark termination (world stopped): flush the barrier buffers and caches once more and
//      drain what they held (little), optionally check the mark (GODEBUG=gccheckmark=1),
//      resolve finalizers, cleanups and weak pointers, turn the barrier off, make every span
//      unswept (sweepgen += 2), let the pacer set the next goal and trigger;
//   4. concurrent sweep: lazily by allocation (in proportion to it) and by the background sweeper.
// PauseNs records the sum of both stop-the-world phases, as Go does. GODEBUG=gcstoptheworld=1
// keeps the whole mark inside one stop-the-world phase instead (gort's earlier collector).
//
// heap_live counts bytes of allocated objects plus the free slots of cached spans (Go's
// heapLive); reaching `trigger` starts a cycle.
#pragma once
#include <atomic>
#include <cstdint>

namespace gort::internal {

struct GcState {
  std::atomic<uint32_t> sweepgen{2};
  std::atomic<uint64_t> heap_live{0};
  std::atomic<uint64_t> trigger{4 << 20};
};

GcState& gc_state();

enum class GcReason { Forced, FreeOSMemory };
// A full, forced collection (Go's runtime.GC): waits for a cycle that starts after the call to
// end, then sweeps whatever is left. A goroutine hands its processor over meanwhile.
void gc_run(GcReason reason);
// The heap reached the trigger: starts a cycle unless one runs. Returns at once, unless the heap
// is past its goal with no mark begun: then it waits (up to 100 ms) for the mark to start.
void gc_start_heap();
// No cycle runs or is requested, and no finalizer or cleanup is queued or running: nothing the
// collector does can wake a goroutine now (the deadlock check, sched/proc.cpp).
bool gc_quiescent();

// Number of processors the collector paces itself against (GOMAXPROCS at start).
int gc_procs();

// Starts and stops the collector's own threads (its cycle, mark workers, sweeper, scavenger,
// destructor thread).
void gc_start_threads(int procs);
void gc_stop_threads();

// GODEBUG=gcstoptheworld=N (N > 0: marking with the world stopped) and gccheckmark=1.
void set_gc_debug(int stoptheworld, bool checkmark);

}  // namespace gort::internal
