// Finalizers, cleanups and weak pointers (Go's mfinal.go and the "specials" of mheap.go).
//
// Each is a Special record attached to the span of its object, keyed by the byte offset of the
// object (for tiny objects, of the object inside its 16-byte block), in a list sorted by offset.
// Spans that have specials are on one global list, guarded by one lock.
//
// In the mark phase (Go's markrootSpans) the specials are roots:
//   finalizer  everything the object references is marked, but not the object itself, so that if
//              A references B and both have finalizers, B is reachable (from A) and only A's
//              finalizer runs in this cycle; the closure is marked;
//   cleanup    the closure is marked (it must not reference its object, or that never dies);
//   weak       nothing: a weak handle does not keep its object alive.
// Work already queued for the finalizer goroutine is a root too.
// A fourth kind, profile, marks a heap-profile sample (stats/mprof.hpp): nothing is marked for
// it; when its object is found dead (and not resurrected) the sample's free is counted.
// When its span is swept after the mark (Go's mspan.sweep; not at mark termination, whose pause
// would then grow with the number of specials: ~0.8 ms for the heap-profile samples of a 512 MB
// heap), each special whose object was not marked is resolved: weak handles are cleared first
// (so get() is null before any finalizer runs); a finalizer is queued and its object resurrected
// (marked, for this cycle, before the sweep frees anything); cleanups are queued unless the
// object is being resurrected by its finalizer, in which case they wait until it dies for good.
// Until then a weak handle still names its dead object: weak_target answers from the mark bit
// while the span waits for its sweep. Objects on a reference cycle through a finalizer object
// stay marked and are never finalized nor freed, as in Go.
//
// Finalizers and cleanups run one at a time, in queue order, on the finalizer goroutine.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gort::internal {

class MarkWorker;
struct Span;
struct ProfileBucket;

void mark_special_roots(MarkWorker& w);
// Attaches a heap-profile sample's bucket to obj (a live object just allocated).
void add_profile_special(const void* obj, ProfileBucket* b);
// Sweeping span s, which has specials: resolves those of its unmarked objects (the world
// running or stopped; before the sweep reads the mark bits). Returns the bytes of the objects it
// resurrected; wakes the finalizer goroutine if it queued work.
uint64_t sweep_specials(Span* s);

// The finalizer goroutine: started with the scheduler, stopped before it.
void start_finalizer_thread();
void stop_finalizer_thread();
// Lets the finalizer goroutine know that work was queued.
void wake_finalizer();
// Finalizers and cleanups queued and not yet finished (a running one counts).
size_t pending_finalizers();

}  // namespace gort::internal
