#include "runtime/alloc/mcache.hpp"

#include <gort/pprof.hpp>

#include <bit>

#include "runtime/core/bits.hpp"
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

// The free slots of word w of a span's bitmap.
uint64_t free_word(const Span* s, int w) { return ~s->alloc_word(w) & s->slot_mask(w); }

// Moves a slot's count of objects handed out into the cache's count for the size class, in a
// statistics batch: a reader (cache_add_counts) adds both, and must see those objects in exactly
// one of them. Before the slot is reset (uncache).
void fold_taken(Cache* c, int spanclass) {
  CacheSlot& slot = c->slots[spanclass];
  uint32_t n = read_count(slot.taken);
  if (n == 0) return;
  StatsUpdate batch;
  count_own(c->nmalloc[spanclass >> 1], n);
  std::atomic_ref<uint32_t>(slot.taken).store(0, std::memory_order_relaxed);
}

// Returns a cached span to its central list, marking as allocated every slot handed out: all of
// the words before the window's (windows are taken in order, each to its end), the window's
// but what is left of it, none after it. Returns how many slots the window had left before any
// held one: the profiler counted their bytes as allocated when the window was loaded.
uint32_t uncache(CacheSlot& slot, int spanclass) {
  Span* s = slot.span;
  uint32_t nleft = 0;
  for (int w = 0; w < s->bitmap_words(); ++w) {
    uint64_t free_bits = w < slot.word ? 0 : w == slot.word ? slot.bits | slot.held : free_word(s, w);
    nleft += static_cast<uint32_t>(popcount64(free_bits));
    s->set_alloc_word(w, s->slot_mask(w) & ~free_bits);
  }
  s->nalloc = static_cast<uint16_t>(s->nelems - nleft);
  // The heap counted every free slot as live when the span was cached; undo the unused ones.
  gc_state().heap_live.fetch_sub(uint64_t{nleft} * s->elemsize, std::memory_order_relaxed);
  uint32_t counted = static_cast<uint32_t>(popcount64(slot.bits));
  central(spanclass).uncache_span(s);
  // Not `taken`: folded already (zero), and read by other threads (cache_add_counts).
  slot.bits = 0;
  slot.window = 0;
  slot.span = nullptr;
  slot.elemsize = 0;
  slot.type = kMixedTypes;
  slot.needzero = false;
  slot.held = 0;
  slot.nfree = 0;
  slot.word = 0;
  return counted;
}

// Makes `free_bits` (free slots of the window, not yet counted) the window's, counted against the
// thread's next heap-profile sample; if the sample falls among them, the window ends before it:
// the sampled slot and those after it become the held ones.
void split_at_sample(Cache* c, CacheSlot& slot, uint64_t free_bits) {
  uint64_t bytes = uint64_t(popcount64(free_bits)) * slot.elemsize;
  if (c->next_sample >= static_cast<int64_t>(bytes)) {  // the common case
    c->next_sample -= static_cast<int64_t>(bytes);
    slot.bits = free_bits;
    slot.held = 0;
    return;
  }
  uint64_t below = 0;
  for (uint64_t rest = free_bits; rest; rest &= rest - 1) {
    if (c->next_sample < static_cast<int64_t>(slot.elemsize)) {
      slot.bits = below;
      slot.held = rest;
      return;
    }
    c->next_sample -= slot.elemsize;
    below |= rest & (~rest + 1);
  }
  slot.bits = below;  // not reached: the sample falls among them
  slot.held = 0;
}

// Loads the span's first word from `from` on with free slots into the window; false when none.
bool load_window(Cache* c, CacheSlot& slot, int from) {
  Span* s = slot.span;
  for (int w = from; w < s->bitmap_words(); ++w) {
    if (uint64_t free_bits = free_word(s, w)) {
      slot.word = static_cast<uint16_t>(w);
      slot.window = s->object_addr(static_cast<uint32_t>(w * 64));
      split_at_sample(c, slot, free_bits);
      return true;
    }
  }
  return false;
}

// The slot's window ran out at its held slot (the profiler's sample): takes it, and splits the
// rest of the window at the next sample.
void* take_held_object(Cache* c, CacheSlot& slot) {
  uint64_t held = slot.held;
  void* o = reinterpret_cast<void*>(slot.window + uintptr_t(std::countr_zero(held)) * slot.elemsize);
  c->next_sample = next_sample_distance();
  split_at_sample(c, slot, held & (held - 1));
  return o;
}

// Allocate-black: marks every free slot of a span being cached while a mark runs.
void mark_free_slots(Span* s) {
  for (int w = 0; w < s->bitmap_words(); ++w)
    for (uint64_t free_bits = free_word(s, w); free_bits; free_bits &= free_bits - 1)
      // relaxed: markers mark the span meanwhile
      std::atomic_ref<uint8_t>(s->markbytes[w * 64 + std::countr_zero(free_bits)]).store(1, std::memory_order_relaxed);
}

// Caches a span of the class with free slots in the slot (giving back the one there).
void cache_new_span(Cache* c, int spanclass, unsigned* follow_up) {
  CacheSlot& slot = c->slots[spanclass];
  fold_taken(c, spanclass);
  if (slot.span) uncache(slot, spanclass);
  Span* s = central(spanclass).cache_span();
  uint32_t nfree = 0;
  for (int w = 0; w < s->bitmap_words(); ++w) nfree += static_cast<uint32_t>(popcount64(free_word(s, w)));
  slot.span = s;
  slot.elemsize = s->elemsize;
  slot.type = window_type(s);
  slot.needzero = s->needzero;
  slot.nfree = nfree;
  sweep_on_alloc(uint64_t{nfree} * s->elemsize);
  if (gc_marking()) {
    mark_free_slots(s);
    c->assist_debt += static_cast<int64_t>(uint64_t{nfree} * s->elemsize);
  }
  // Go's accounting: a cached span's free slots count as live heap until given back.
  uint64_t live = gc_state().heap_live.fetch_add(uint64_t{nfree} * s->elemsize, std::memory_order_relaxed) +
                  uint64_t{nfree} * s->elemsize;
  if (live >= gc_state().trigger.load(std::memory_order_relaxed)) *follow_up |= kGcNeeded;
}
}  // namespace

bool cache_next_window(Cache* c, int spanclass) {
  CacheSlot& slot = c->slots[spanclass];
  return !slot.held && slot.span && load_window(c, slot, slot.word + 1) && slot.bits;
}

void* cache_next_object(Cache* c, int spanclass, unsigned* follow_up) {
  CacheSlot& slot = c->slots[spanclass];
  // After cache_next_window: either the window it loaded starts at the held sample, or the span
  // has no free slot left (or there is none).
  if (!slot.held) {
    cache_new_span(c, spanclass, follow_up);
    if (!load_window(c, slot, 0)) fatal("a span with no free slot was cached (class %d)", spanclass);
  }
  if (!slot.bits) {  // the window's first free slot is the sample
    *follow_up |= kSampled;
    return take_held_object(c, slot);
  }
  return take_from_window(slot);
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

void cache_flush(Cache* c) {
  for (int spc = 0; spc < kNumSpanClasses; ++spc) {
    CacheSlot& slot = c->slots[spc];
    fold_taken(c, spc);
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
  for (int spc = 0; spc < kNumSpanClasses; ++spc) nmalloc[spc >> 1] += read_count(c->slots[spc].taken);
  *tiny_allocs += read_count(c->tiny_allocs);
}

}  // namespace gort::internal
