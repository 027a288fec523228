// The page heap (Go's mheap): hands out spans of whole 8 KiB pages.
//
// Free spans sit on size-segregated lists (exact lists for 1..127 pages, one list for larger runs,
// searched best-fit) and are coalesced with free neighbours when freed, so the heap does not
// fragment into unusable runs. When no free span fits, the heap grows: it maps more of the current
// arena (at least kGrowStep at a time) or reserves new arenas. Every mapped heap byte counts in
// HeapSys; bytes of InUse spans in HeapInuse; pages of free spans whose memory the scavenger gave
// back to the OS are flagged in their arena's `released` bitmap and count in HeapReleased until a
// span covering them is allocated again.
//
// All of it is guarded by one lock, taken only inside critical sections.
#pragma once
#include <atomic>
#include <cstddef>

#include "runtime/alloc/arena.hpp"
#include "runtime/alloc/span.hpp"
#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"

namespace gort::internal {

class PageHeap {
 public:
  PageHeap();
  // A span of npages in state Preparing: the caller sets its layout fields, then publishes it.
  Span* alloc(size_t npages);
  // The span's layout is set: markers may look into it (span.hpp, the publication).
  static void publish(Span* s) { s->set_state(SpanState::InUse, std::memory_order_release); }
  // Returns an InUse span's pages to the heap.
  void free(Span* s);
  // Returns up to `bytes` of free memory to the OS (all of it for ~0). Returns bytes released.
  size_t scavenge(size_t bytes);
  // Bytes of free pages not yet returned to the OS.
  size_t free_retained_bytes();

  ArenaMap& arenas() { return arenas_; }
  const ArenaMap& arenas() const { return arenas_; }

 private:
  static constexpr size_t kNumExactLists = 128;
  static constexpr size_t kGrowStep = 4 << 20;

  Span* take_free(size_t npages);
  void insert_free(Span* s);
  void remove_free(Span* s);
  void grow(size_t npages);
  void set_span_pages(Span* s, bool all_pages);
  size_t count_and_clear_released(uintptr_t base, size_t npages);
  size_t release_span(Span* s, size_t want);
  Span* free_neighbour(uintptr_t page_addr);

  SpinLock lock_;
  ArenaMap arenas_;
  FixAlloc<Span> span_alloc_;
  SpanList free_[kNumExactLists];  // free_[n]: spans of exactly n pages (n >= 1)
  SpanList free_large_;            // spans of kNumExactLists pages or more
  uint64_t nonempty_[2] = {0, 0};  // bit n: free_[n] is not empty
  size_t free_pages_ = 0;
  size_t released_pages_ = 0;
  uintptr_t cur_ = 0, end_ = 0;    // mapped up to cur_, reserved up to end_
};

// The page heap. Not a function-local static: its guard check calls into libstdc++, which with
// split stacks would send every call through __morestack (core/mem.hpp); inline, since the
// marker looks spans up through it for every pointer.
extern std::atomic<PageHeap*> g_heap;
PageHeap* mheap_init();
inline PageHeap& mheap() {
  PageHeap* h = g_heap.load(std::memory_order_acquire);
  if (!h) [[unlikely]] h = mheap_init();
  return *h;
}

}  // namespace gort::internal
