// The per-thread allocation cache (Go's mcache).
//
// Each attached thread owns one Cache; only that thread touches it, except the collector while
// the world is stopped. For every span class the cache holds one span and a 64-slot window of
// that span's free-slot bitmap (CacheSlot), so the fast path of allocation takes the lowest bit
// of a thread-local word: no lock, no atomic, no read of the object's memory. Allocation counts
// are kept per cache and flushed to the global statistics when the cache gives its spans back
// (at each collection, or when the thread detaches).
//
// The tiny allocator (Go's) packs pointer-free objects under 16 bytes into one 16-byte block of
// the noscan class 2; the block is freed when none of its objects is reachable.
#pragma once
#include <bit>
#include <cstdint>

#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/span.hpp"
#include "runtime/gc/barrier.hpp"

namespace gort::internal {

// One span class's cached span and, of its slots, the window of 64 the fast path allocates from
// (Go's allocCache): the AllocWindow that make<T>'s inline path reads (include/gort/internal/
// alloc.hpp: bit i of `bits` set means the slot at window + i*elemsize is free; `type` and
// `needzero` copied from the span, so that neither fast path reads the span), then what only the
// library reads. The fast path takes the lowest bit: no read of the object's memory (a free list
// would have written a link into every free slot at refill and read it back at allocation). One
// cache line per slot.
struct alignas(kAllocWindowStride) CacheSlot : AllocWindow {
  Span* span = nullptr;
  // Heap profiling: the window's free slots from the one the profiler samples on (the lowest
  // bit); `bits` ends before it, so the fast path runs out exactly there and the slow path hands
  // it out (stats/mprof.hpp).
  uint64_t held = 0;
  uint32_t nfree = 0;  // free slots of the span when it was cached
  uint16_t word = 0;   // the window's word of the span's bitmaps (words before it: all taken)
};
static_assert(sizeof(CacheSlot) == kAllocWindowStride);

// What the window says of a span's types: its one type, or kMixedTypes once it keeps a table.
inline uint16_t window_type(const Span* s) { return s->types ? kMixedTypes : s->type; }

// What an allocation must do once out of its critical section (allocate()).
enum AllocFollowUp : unsigned {
  kGcNeeded = 1,  // the heap grew past the collector's trigger
  kSampled = 2,   // the heap profiler samples this allocation
};

// The slots come first: make<T>'s inline path finds a class's window kAllocWindowStride bytes
// per span class from the start of the Cache.
struct Cache {
  CacheSlot slots[kNumSpanClasses];
  uint64_t nmalloc[kNumSizeClasses] = {};  // objects allocated since the last flush, but the slots' `taken`
  uintptr_t tiny = 0;                      // current tiny block, or 0
  uintptr_t tiny_offset = 0;
  uint64_t tiny_allocs = 0;                // tiny objects placed in an existing block
  // Concurrent marking: bytes this thread took for allocation (whole spans' free slots, large
  // objects) not yet paid for with mark assists (gc/assist.cpp); negative: credit.
  int64_t assist_debt = 0;
  // Bytes this thread may still allocate before the heap profiler samples (stats/mprof.hpp):
  // counted per window of free slots when loaded (held), never on the fast path.
  int64_t next_sample = 0;
  WbBuf wb;                                // the write barrier's buffer (gc/mbarrier.cpp)
};

Cache* cache_create();
// Gives a cache's spans, counts and barrier buffer back (its thread detaches), then frees it.
void cache_release(Cache* c);
void cache_free(Cache* c);
// The next object of the slot of `spanclass`, whose window ran out and for which
// cache_next_window found no next window of free slots before the sample: the profiler's held
// sample (adds kSampled to *follow_up), or the first free slot of a new span.
// Adds kGcNeeded to *follow_up when a new span took the heap past the collector's trigger. While
// a mark runs, a new span's free slots are marked (allocate-black: whatever is allocated from
// them survives the cycle) and their bytes are charged to the thread's assist debt.
void* cache_next_object(Cache* c, int spanclass, unsigned* follow_up);
// Moves the slot's window to the span's next word with free slots, on the thread's own stack (no
// libc, no lock); false when the slow path must run: no such word, or the window starts at the
// profiler's sample.
bool cache_next_window(Cache* c, int spanclass);
// Takes the lowest free slot of the slot's window (bits != 0).
inline void* take_from_window(CacheSlot& slot) { return take_from_window(slot, slot.elemsize); }
// Gives every span back to the central lists and the counts to the global statistics.
void cache_flush(Cache* c);
// Adds the cache's not-yet-flushed counts to per-class malloc counts (its thread may be
// allocating: a consistent read, core/statsupdate.hpp).
void cache_add_counts(Cache* c, uint64_t* nmalloc, uint64_t* tiny_allocs);

}  // namespace gort::internal
