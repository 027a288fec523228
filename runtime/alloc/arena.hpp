// Heap arenas and the address-to-span lookup (Go's heapArena and mheap.arenas).
//
// The heap's address space is reserved in 64 MiB arenas aligned to their size. Each arena has a
// metadata record (HeapArena) mapping each of its 8192 pages to the span that covers it, and a
// bitmap of pages whose memory was returned to the OS. A two-level table indexed by arena number
// finds the record of any address, so span_of(p) works for every pointer, including interior
// pointers and words read from stacks that only look like pointers (conservative scanning).
//
// Invariants: spans[] of every page of an InUse span points to that span; for a Free span only its
// first and last pages are guaranteed to (the page heap coalesces through them). Lookups that may
// see arbitrary words must check state and bounds of the span they get (span_of_checked).
#pragma once
#include <atomic>
#include <cstdint>

#include "runtime/alloc/span.hpp"

namespace gort::internal {

constexpr size_t kArenaShift = 26;  // 64 MiB
constexpr size_t kArenaSize = size_t{1} << kArenaShift;
constexpr size_t kPagesPerArena = kArenaSize / kPageSize;
constexpr size_t kAddrBits = 48;
constexpr size_t kArenaL2Bits = 12;
constexpr size_t kArenaL1Bits = kAddrBits - kArenaShift - kArenaL2Bits;

struct HeapArena {
  Span* spans[kPagesPerArena];
  uint64_t released[kPagesPerArena / 64];  // page returned to the OS (HeapReleased)
};

class ArenaMap {
 public:
  HeapArena* arena_of(uintptr_t p) const {
    uintptr_t n = p >> kArenaShift;
    HeapArena* const* l2 = l1_[(n >> kArenaL2Bits) & ((size_t{1} << kArenaL1Bits) - 1)].load(std::memory_order_acquire);
    return l2 ? l2[n & ((size_t{1} << kArenaL2Bits) - 1)] : nullptr;
  }
  // Span covering p, for pointers known to point into the heap.
  Span* span_of(uintptr_t p) const { return page_span(arena_of(p), p); }
  // InUse span containing p, or nullptr for any word that is not a pointer into an in-use span.
  Span* span_of_checked(uintptr_t p) const {
    if (p < lo_.load(std::memory_order_relaxed) || p >= hi_.load(std::memory_order_relaxed)) return nullptr;
    HeapArena* a = arena_of(p);
    if (!a) return nullptr;
    Span* s = page_span(a, p);
    if (!s || s->state(std::memory_order_acquire) != SpanState::InUse || !s->contains(p)) return nullptr;
    return s;
  }
  void set_span(uintptr_t page_addr, Span* s) {
    std::atomic_ref<Span*>(arena_of(page_addr)->spans[(page_addr >> kPageShift) & (kPagesPerArena - 1)])
        .store(s, std::memory_order_relaxed);
  }
  // Relaxed: the page heap sets entries (under its lock) while markers look words up; what a
  // marker then reads of the span is ordered by the span's state (span.hpp).
  static Span* page_span(const HeapArena* a, uintptr_t p) {
    return std::atomic_ref<Span* const>(a->spans[(p >> kPageShift) & (kPagesPerArena - 1)]).load(std::memory_order_relaxed);
  }
  // Reserves a fresh arena (address space only) and registers its metadata. Returns its base.
  uintptr_t add_arena();

  uintptr_t lo() const { return lo_.load(std::memory_order_relaxed); }
  uintptr_t hi() const { return hi_.load(std::memory_order_relaxed); }

 private:
  std::atomic<HeapArena**> l1_[size_t{1} << kArenaL1Bits] = {};
  std::atomic<uintptr_t> lo_{~uintptr_t{0}};
  std::atomic<uintptr_t> hi_{0};
};

}  // namespace gort::internal
