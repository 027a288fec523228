// Sweeping (Go's mgcsweep.go) and the destructor queue.
//
// Sweeping a span turns the mark phase's verdict into free slots: allocbits := the mark bytes, and every
// slot that was allocated but not marked is freed (counted in Frees). It never touches object
// memory, so a span is swept in time proportional to its bitmap, not its size. Spans are swept
// lazily by the thread that wants a span of their class, by the background sweeper thread, and
// at the latest at the start of the next cycle (with the world stopped). A span with specials has
// them resolved first (gc/mfinal.hpp: finalizers queued and their objects resurrected, weak
// handles cleared, heap-profile samples freed), as Go's mspan.sweep does, rather than all of
// them at mark termination, with the world stopped.
//
// Destructors never run inside the sweeper: it runs in critical sections and may hold locks,
// while a destructor is user code that may allocate or block. An unreachable object whose type
// has a destructor is instead kept allocated and queued; the destructor thread runs the
// destructor and clears the object's type, and the next cycle's sweep frees the slot. The slot's
// type entry moves T -> T|kPendingDestroy -> kDestroying -> 0 (typeinfo.hpp). A destructor must
// not use other managed objects: they may be gone already.
#pragma once
#include "runtime/alloc/span.hpp"

namespace gort::internal {

// Sweeps a span the caller owns (taken from an unswept list). Returns false when the span held no
// live object and `may_free` let it go back to the page heap.
bool sweep_span(Span* s, bool may_free);
// Sweeps one unswept span, looking from span class *cursor on (then large spans); false when
// none is left. Callers on attached threads hold a critical section around each call.
bool sweep_one(int* cursor);
// Held by a thread from taking a span off an unswept list to the end of that span's sweep. The
// last one to end once no span is left publishes the heap profile's frees counted by the sweep
// (profile_post_sweep, stats/mprof.hpp).
class SweepScope {
 public:
  SweepScope();
  ~SweepScope();
  SweepScope(const SweepScope&) = delete;
  SweepScope& operator=(const SweepScope&) = delete;
};
// True while some thread is sweeping a span it took off an unswept list.
bool sweeps_in_progress();
// Sweeps every span still unswept (world stopped, or from the background sweeper).
void finish_sweep();
// Wakes the background sweeper after a cycle.
void wake_sweeper();

// Proportional sweeping (Go's deductSweepCredit): after a cycle, allocation pays for sweeping at
// a rate of pages per byte such that every page is swept before the heap grows from `heap_live`
// to the next `trigger`; the background sweeper usually gets there first. sweep_pacing_start
// runs at mark termination (world stopped), sweep_on_alloc on the allocation slow path (inside a
// critical section), with the bytes just taken.
void sweep_pacing_start(uint64_t heap_live, uint64_t trigger);
void sweep_on_alloc(uint64_t bytes);
// True once every span was swept since the last cycle.
bool sweep_done();

void start_sweeper();
void stop_sweeper();
void start_destructor_thread();
void stop_destructor_thread();
// Number of destructors queued and not yet run (for tests and FreeOSMemory).
size_t pending_destructors();

}  // namespace gort::internal
