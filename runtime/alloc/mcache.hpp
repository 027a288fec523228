// The per-thread allocation cache (Go's mcache).
//
// Each attached thread owns one Cache; only that thread touches it, except the collector while
// the world is stopped. For every span class the cache holds one span and a free list threaded
// through that span's free slots, so the fast path of allocation is a pop from a thread-local
// list: no lock, no atomic. Allocation counts are kept per cache and flushed to the global
// statistics when the cache gives its spans back (at each collection, or when the thread detaches).
//
// The tiny allocator (Go's) packs pointer-free objects under 16 bytes into one 16-byte block of
// the noscan class 2; the block is freed when none of its objects is reachable.
#pragma once
#include <cstdint>

#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/span.hpp"
#include "runtime/gc/barrier.hpp"

namespace gort::internal {

struct FreeObject {
  FreeObject* next;
};

struct CacheSlot {
  FreeObject* free = nullptr;  // free slots of span, in address order
  Span* span = nullptr;
  uint32_t nfree = 0;          // slots on the list when the span was cached
  // Heap profiling: the free slots from the one the profiler samples on; `free` ends before it,
  // so the fast path runs out exactly there and the refill path hands it out (stats/mprof.hpp).
  FreeObject* held = nullptr;
};

// What an allocation must do once out of its critical section (allocate()).
enum AllocFollowUp : unsigned {
  kGcNeeded = 1,  // the heap grew past the collector's trigger
  kSampled = 2,   // the heap profiler samples this allocation
};

struct Cache {
  CacheSlot slots[kNumSpanClasses];
  uint64_t nmalloc[kNumSizeClasses] = {};  // objects allocated since the last flush (count_own)
  uintptr_t tiny = 0;                      // current tiny block, or 0
  uintptr_t tiny_offset = 0;
  uint64_t tiny_allocs = 0;                // tiny objects placed in an existing block
  // Concurrent marking: bytes this thread took for allocation (whole spans' free slots, large
  // objects) not yet paid for with mark assists (gc/assist.cpp); negative: credit.
  int64_t assist_debt = 0;
  // Bytes this thread may still allocate before the heap profiler samples (stats/mprof.hpp):
  // counted per span's free list at refill (held), never on the fast path.
  int64_t next_sample = 0;
  WbBuf wb;                                // the write barrier's buffer (gc/mbarrier.cpp)
};

Cache* cache_create();
// Gives a cache's spans, counts and barrier buffer back (its thread detaches), then frees it.
void cache_release(Cache* c);
void cache_free(Cache* c);
// Refills the slot of `spanclass` with a span that has free slots; returns its first free object.
// Adds kGcNeeded to *follow_up when the heap has grown past the collector's trigger. While a mark runs, the
// span's free slots are marked (allocate-black: whatever is allocated from them survives the
// cycle) and their bytes are charged to the thread's assist debt.
FreeObject* cache_refill(Cache* c, int spanclass, unsigned* follow_up);
// The slot ran out at its held object (the profiler's sample): takes it off, splits the rest at
// the next sample, and returns it with its `next` set to the slot's new free list.
FreeObject* take_held_object(Cache* c, CacheSlot& slot);
// Gives every span back to the central lists and the counts to the global statistics.
void cache_flush(Cache* c);
// Adds the cache's not-yet-flushed counts to per-class malloc counts (its thread may be
// allocating: a consistent read, core/statsupdate.hpp).
void cache_add_counts(Cache* c, uint64_t* nmalloc, uint64_t* tiny_allocs);

}  // namespace gort::internal
