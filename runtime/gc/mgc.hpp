// The collector's cycle (Go's mgc.go), stop-the-world in this version.
//
// One cycle, all of it with the world stopped:
//   1. sweep termination: finish sweeping the previous cycle's spans, flush every thread's cache
//      (their spans return to the central lists, their counts to the statistics);
//   2. mark: roots (attached threads' stacks and registers, conservatively; Root<T> slots,
//      precisely) then the transitive closure through trace(), on every core (mark.hpp);
//   3. mark termination: every span becomes unswept (sweepgen += 2), the pacer sets the next
//      heap goal from the marked heap, the pause and CPU time are recorded.
// Sweeping then proceeds lazily and in the background (sweep.hpp), with the world running.
//
// Triggering: heap_live counts bytes of allocated objects plus the free slots of cached spans
// (Go's heapLive); when it reaches `trigger` (the heap goal, since marking is not concurrent yet)
// the allocating thread runs a cycle.
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

enum class GcReason { Heap, Forced, FreeOSMemory };
// Runs a collection for `reason` (a Heap cycle only if the trigger is still exceeded).
void gc_run(GcReason reason);

// Number of processors used for marking (hardware threads until the scheduler brings GOMAXPROCS).
int gc_procs();

// Starts and stops the collector's own threads (mark workers, sweeper, scavenger, destructor thread).
void gc_start_threads(int procs);
void gc_stop_threads();

}  // namespace gort::internal
