#include "runtime/alloc/mheap.hpp"

#include <atomic>
#include <bit>

#include "runtime/stats/stats.hpp"

namespace gort::internal {

PageHeap::PageHeap() : span_alloc_(stats().mspan_sys, stats().mspan_inuse) {}

void PageHeap::set_span_pages(Span* s, bool all_pages) {
  if (all_pages) {
    for (size_t i = 0; i < s->npages; ++i) arenas_.set_span(s->base + (i << kPageShift), s);
  } else {
    arenas_.set_span(s->base, s);
    arenas_.set_span(s->base + ((s->npages - 1) << kPageShift), s);
  }
}

void PageHeap::insert_free(Span* s) {
  s->set_state(SpanState::Free, std::memory_order_relaxed);
  set_span_pages(s, false);
  free_pages_ += s->npages;
  if (s->npages < kNumExactLists) {
    free_[s->npages].push(s);
    nonempty_[s->npages >> 6] |= uint64_t{1} << (s->npages & 63);
  } else {
    free_large_.push(s);
  }
}

void PageHeap::remove_free(Span* s) {
  free_pages_ -= s->npages;
  if (s->npages < kNumExactLists) {
    free_[s->npages].remove(s);
    if (free_[s->npages].empty()) nonempty_[s->npages >> 6] &= ~(uint64_t{1} << (s->npages & 63));
  } else {
    free_large_.remove(s);
  }
}

Span* PageHeap::take_free(size_t npages) {
  if (npages < kNumExactLists) {
    for (size_t w = npages >> 6; w < 2; ++w) {
      uint64_t bits = nonempty_[w];
      if (w == npages >> 6) bits &= ~uint64_t{0} << (npages & 63);
      if (bits) {
        Span* s = free_[w * 64 + static_cast<size_t>(std::countr_zero(bits))].first();
        remove_free(s);
        return s;
      }
    }
  }
  Span* best = nullptr;
  for (Span* s = free_large_.first(); s; s = s->next) {
    if (s->npages >= npages && (!best || s->npages < best->npages || (s->npages == best->npages && s->base < best->base))) best = s;
  }
  if (best) remove_free(best);
  return best;
}

size_t PageHeap::count_and_clear_released(uintptr_t base, size_t npages) {
  size_t n = 0;
  for (size_t i = 0; i < npages; ++i) {
    uintptr_t p = base + (i << kPageShift);
    HeapArena* a = arenas_.arena_of(p);
    size_t page = (p >> kPageShift) & (kPagesPerArena - 1);
    uint64_t bit = uint64_t{1} << (page & 63);
    if (a->released[page >> 6] & bit) {
      a->released[page >> 6] &= ~bit;
      ++n;
    }
  }
  return n;
}

void PageHeap::grow(size_t npages) {
  size_t need = npages << kPageShift;
  if (cur_ + need > end_) {
    size_t narenas = (need + kArenaSize - 1) / kArenaSize;
    uintptr_t base = arenas_.add_arena();
    for (size_t i = 1; i < narenas; ++i) {
      uintptr_t next = arenas_.add_arena();
      if (next != base + i * kArenaSize) {  // not contiguous: start over from this arena
        base = next;
        i = 0;
      }
    }
    if (base != end_) cur_ = base;  // the old tail stays reserved, unused
    end_ = base + narenas * kArenaSize;
  }
  size_t step = round_up(need > kGrowStep ? need : kGrowStep, kPageSize);
  if (cur_ + step > end_) step = end_ - cur_;
  sys_map(reinterpret_cast<void*>(cur_), step, stats().heap_sys);
  Span* s = span_alloc_.make();
  s->base = cur_;
  s->npages = step >> kPageShift;
  s->needzero = false;
  cur_ += step;
  // Merge with a free span that ends where this one starts.
  if (Span* prev = free_neighbour(s->base - kPageSize); prev && prev->limit() == s->base) {
    remove_free(prev);
    prev->npages += s->npages;
    span_alloc_.destroy(s);
    s = prev;
  }
  insert_free(s);
}

Span* PageHeap::free_neighbour(uintptr_t page_addr) {
  if (page_addr < arenas_.lo() || page_addr >= arenas_.hi()) return nullptr;
  HeapArena* a = arenas_.arena_of(page_addr);
  if (!a) return nullptr;
  Span* s = ArenaMap::page_span(a, page_addr);
  return s && s->state(std::memory_order_relaxed) == SpanState::Free && s->contains(page_addr) ? s : nullptr;
}

Span* PageHeap::alloc(size_t npages) {
  LockGuard g(lock_);
  Span* s = take_free(npages);
  while (!s) {
    grow(npages);
    s = take_free(npages);
  }
  if (s->npages > npages) {  // split; the tail stays free
    Span* rest = span_alloc_.make();
    rest->base = s->base + (npages << kPageShift);
    rest->npages = s->npages - npages;
    rest->needzero = s->needzero;
    s->npages = npages;
    insert_free(rest);
  }
  size_t released = count_and_clear_released(s->base, npages);
  released_pages_ -= released;
  {
    StatsUpdate batch;  // HeapReleased <= HeapIdle: both move together
    stats().heap_released.fetch_sub(released << kPageShift, std::memory_order_relaxed);
    stats().heap_inuse.fetch_add(npages << kPageShift, std::memory_order_relaxed);
  }
  s->set_state(SpanState::Preparing, std::memory_order_relaxed);
  set_span_pages(s, true);
  return s;
}

void PageHeap::free(Span* s) {
  LockGuard g(lock_);
  {
    StatsUpdate batch;
    stats().heap_inuse.fetch_sub(s->npages << kPageShift, std::memory_order_relaxed);
  }
  s->needzero = true;
  s->cached = false;
  s->types = nullptr;
  s->type = 0;
  s->markbytes = nullptr;
  if (Span* prev = free_neighbour(s->base - kPageSize)) {
    remove_free(prev);
    prev->npages += s->npages;
    prev->needzero = true;
    span_alloc_.destroy(s);
    s = prev;
  }
  if (Span* next = free_neighbour(s->limit())) {
    remove_free(next);
    s->npages += next->npages;
    span_alloc_.destroy(next);
  }
  insert_free(s);
}

size_t PageHeap::release_span(Span* s, size_t want) {
  size_t released = 0;
  size_t i = 0;
  while (i < s->npages && released < want) {
    uintptr_t p = s->base + (i << kPageShift);
    HeapArena* a = arenas_.arena_of(p);
    size_t page = (p >> kPageShift) & (kPagesPerArena - 1);
    uint64_t bit = uint64_t{1} << (page & 63);
    if (a->released[page >> 6] & bit) { ++i; continue; }
    // A run of unreleased pages, released with one madvise.
    size_t j = i;
    uintptr_t start = p;
    while (j < s->npages && released < want) {
      uintptr_t q = s->base + (j << kPageShift);
      HeapArena* b = arenas_.arena_of(q);
      size_t pg = (q >> kPageShift) & (kPagesPerArena - 1);
      uint64_t bt = uint64_t{1} << (pg & 63);
      if (b->released[pg >> 6] & bt) break;
      b->released[pg >> 6] |= bt;
      released += kPageSize;
      ++j;
    }
    sys_unused(reinterpret_cast<void*>(start), (j - i) << kPageShift);
    i = j;
  }
  return released;
}

size_t PageHeap::scavenge(size_t bytes) {
  LockGuard g(lock_);
  size_t released = 0;
  auto sweep_list = [&](SpanList& l) {
    for (Span* s = l.first(); s && released < bytes; s = s->next) released += release_span(s, bytes - released);
  };
  sweep_list(free_large_);
  for (size_t n = kNumExactLists - 1; n >= 1 && released < bytes; --n) sweep_list(free_[n]);
  released_pages_ += released >> kPageShift;
  StatsUpdate batch;
  stats().heap_released.fetch_add(released, std::memory_order_relaxed);
  return released;
}

size_t PageHeap::free_retained_bytes() {
  LockGuard g(lock_);
  return (free_pages_ - released_pages_) << kPageShift;
}

}  // namespace gort::internal

namespace gort::internal {
namespace {
__attribute__((noinline)) PageHeap* make_heap() {
  static PageHeap h;
  return &h;
}
}  // namespace

std::atomic<PageHeap*> g_heap{nullptr};

PageHeap* mheap_init() {
  PageHeap* h = make_heap();
  g_heap.store(h, std::memory_order_release);
  return h;
}
}  // namespace gort::internal
