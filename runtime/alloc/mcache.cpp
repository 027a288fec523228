#include "runtime/alloc/mcache.hpp"

#include <gort/pprof.hpp>

#include <bit>

#include "runtime/core/persistent.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/sweep.hpp"
#include "runtime/stats/mprof.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
FixAlloc<Cache>& cache_alloc() {
  static FixAlloc<Cache> a(stats().mcache_sys, stats().mcache_inuse);
  return a;
}

// Builds the free list through the span's free slots; returns how many there are.
uint32_t build_free_list(Span* s, FreeObject** head) {
  FreeObject* first = nullptr;
  FreeObject** link = &first;
  uint32_t n = 0;
  for (int w = 0; w * 64 < s->nelems; ++w) {
    uint64_t free_bits = ~s->alloc_word(w);
    int limit = s->nelems - w * 64;
    if (limit < 64) free_bits &= (uint64_t{1} << limit) - 1;
    while (free_bits) {
      int b = std::countr_zero(free_bits);
      free_bits &= free_bits - 1;
      auto* o = reinterpret_cast<FreeObject*>(s->object_addr(static_cast<uint32_t>(w * 64 + b)));
      *link = o;
      link = &o->next;
      ++n;
    }
  }
  *link = nullptr;
  *head = first;
  return n;
}

// Returns a cached span to its central list, marking as allocated every slot taken from the list.
// Returns how many slots were left on the free list before any held one: the profiler counted
// their bytes as allocated when the span was cached.
uint32_t uncache(CacheSlot& slot, int spanclass) {
  Span* s = slot.span;
  uint64_t still_free[Span::kBitWords] = {};
  uint32_t nleft = 0, counted = 0;
  for (FreeObject* list : {slot.free, slot.held}) {
    if (list == slot.held) counted = nleft;
    for (FreeObject* o = list; o; o = o->next) {
      uint32_t i = s->object_index(reinterpret_cast<uintptr_t>(o));
      still_free[i >> 6] |= uint64_t{1} << (i & 63);
      ++nleft;
    }
  }
  for (int w = 0; w * 64 < s->nelems; ++w) {
    int limit = s->nelems - w * 64;
    uint64_t valid = limit < 64 ? (uint64_t{1} << limit) - 1 : ~uint64_t{0};
    s->set_alloc_word(w, valid & ~still_free[w]);
  }
  s->nalloc = static_cast<uint16_t>(s->nelems - nleft);
  // The heap counted every free slot as live when the span was cached; undo the unused ones.
  gc_state().heap_live.fetch_sub(uint64_t{nleft} * s->elemsize, std::memory_order_relaxed);
  central(spanclass).uncache_span(s);
  slot = CacheSlot{};
  return counted;
}
// Counts the list `*head` (n objects of elemsize bytes, n unknown: 0) against the thread's next
// sample; if the sample falls inside it, cuts it there: the sampled object and those after it
// become the slot's held list.
void split_at_sample(Cache* c, CacheSlot& slot, FreeObject** head, uint32_t n, uint32_t elemsize) {
  if (n && c->next_sample >= static_cast<int64_t>(uint64_t{n} * elemsize)) {  // the common case
    c->next_sample -= static_cast<int64_t>(uint64_t{n} * elemsize);
    return;
  }
  for (FreeObject** link = head; *link; link = &(*link)->next) {
    if (c->next_sample < elemsize) {
      slot.held = *link;
      *link = nullptr;
      return;
    }
    c->next_sample -= elemsize;
  }
}
}  // namespace

FreeObject* take_held_object(Cache* c, CacheSlot& slot) {
  FreeObject* o = slot.held;
  FreeObject* rest = o->next;
  slot.held = nullptr;
  c->next_sample = next_sample_distance();
  split_at_sample(c, slot, &rest, 0, slot.span->elemsize);
  o->next = rest;
  return o;
}

Cache* cache_create() {
  Cache* c = cache_alloc().make();
  c->next_sample = next_sample_distance();
  return c;
}

void cache_release(Cache* c) {
  // A thread that detaches during a mark: what its barrier shaded must still be marked.
  if (gc_marking()) wb_flush(c->wb);
  cache_flush(c);
}

void cache_free(Cache* c) { cache_alloc().destroy(c); }

namespace {
// Allocate-black: marks every free slot of a span being cached while a mark runs.
void mark_free_slots(Span* s) {
  for (int w = 0; w * 64 < s->nelems; ++w) {
    uint64_t free_bits = ~s->allocbits[w];
    int limit = s->nelems - w * 64;
    if (limit < 64) free_bits &= (uint64_t{1} << limit) - 1;
    for (; free_bits; free_bits &= free_bits - 1)  // relaxed: markers mark the span meanwhile
      std::atomic_ref<uint8_t>(s->markbytes[w * 64 + std::countr_zero(free_bits)]).store(1, std::memory_order_relaxed);
  }
}
}  // namespace

FreeObject* cache_refill(Cache* c, int spanclass, unsigned* follow_up) {
  CacheSlot& slot = c->slots[spanclass];
  if (slot.span) uncache(slot, spanclass);
  Span* s = central(spanclass).cache_span();
  slot.span = s;
  slot.nfree = build_free_list(s, &slot.free);
  split_at_sample(c, slot, &slot.free, slot.nfree, s->elemsize);
  sweep_on_alloc(uint64_t{slot.nfree} * s->elemsize);
  if (gc_marking()) {
    mark_free_slots(s);
    c->assist_debt += static_cast<int64_t>(uint64_t{slot.nfree} * s->elemsize);
  }
  // Go's accounting: a cached span's free slots count as live heap until given back.
  uint64_t live = gc_state().heap_live.fetch_add(uint64_t{slot.nfree} * s->elemsize, std::memory_order_relaxed) +
                  uint64_t{slot.nfree} * s->elemsize;
  if (live >= gc_state().trigger.load(std::memory_order_relaxed)) *follow_up |= kGcNeeded;
  if (!slot.free) {  // the span's first free slot is the sample
    *follow_up |= kSampled;
    return take_held_object(c, slot);
  }
  return slot.free;
}

void cache_flush(Cache* c) {
  for (int spc = 0; spc < kNumSpanClasses; ++spc) {
    CacheSlot& slot = c->slots[spc];
    if (!slot.span) continue;
    uint32_t elemsize = slot.span->elemsize;
    uint32_t unused = uncache(slot, spc);
    // Bytes counted toward the next sample but never allocated: counted again when allocated
    // (at rate 1, Go's "every allocation", there is nothing to count).
    if (MemProfileRate != 1) c->next_sample += static_cast<int64_t>(uint64_t{unused} * elemsize);
  }
  {
    StatsUpdate batch;  // the counts move from the cache to the totals at once
    for (int cls = 0; cls < kNumSizeClasses; ++cls) {
      if (uint64_t n = read_count(c->nmalloc[cls])) stats().small_mallocs[cls].fetch_add(n, std::memory_order_relaxed);
      std::atomic_ref<uint64_t>(c->nmalloc[cls]).store(0, std::memory_order_relaxed);
    }
    stats().tiny_allocs.fetch_add(read_count(c->tiny_allocs), std::memory_order_relaxed);
    std::atomic_ref<uint64_t>(c->tiny_allocs).store(0, std::memory_order_relaxed);
  }
  // The tiny block may die in the coming cycle: never keep filling it across a collection.
  c->tiny = 0;
  c->tiny_offset = 0;
}

void cache_add_counts(Cache* c, uint64_t* nmalloc, uint64_t* tiny_allocs) {
  for (int cls = 0; cls < kNumSizeClasses; ++cls) nmalloc[cls] += read_count(c->nmalloc[cls]);
  *tiny_allocs += read_count(c->tiny_allocs);
}

}  // namespace gort::internal
