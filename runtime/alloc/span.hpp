// Span: a run of contiguous 8 KiB pages, the unit the page heap hands out (Go's mspan).
//
// A span is Free (owned by the page heap), Preparing (taken from the page heap, its layout being
// set), or InUse (holds objects: either nelems objects of one size class, or one large object).
// InUse is published last, with a release store, once the layout (elemsize, divmagic, nelems,
// markbytes, allocbits, types) is set: a marker that found the span from an arbitrary word reads
// the state first (acquire, ArenaMap::span_of_checked) and the layout only if it is InUse (Go's
// mspan.state and publicationBarrier). Marking never overlaps a span's return to the page heap
// (spans are freed by the sweep, which is over before a mark starts).
// Object slot i of an InUse span lives at base + i*elemsize. Its state is kept in side bitmaps:
//   allocbits: slot i held a live object when the span was last swept (or was allocated since);
//   markbytes: slot i was reached by the current mark phase. One byte per slot, set with a plain
//              store: parallel markers never need a locked read-modify-write (Boehm GC's mark
//              bytes). Two markers racing on one object may both scan it, which is harmless.
// Each object's type index (gc/typeinfo.hpp) is found one of two ways:
//   uniform: types is null and every object of the span has the type `type` (0 until the first
//            typed allocation). Most spans hold objects of one trivially destructible type, and
//            then neither the allocator nor the marker touches a side table (no miss, no GCSys).
//   table:   types points to one entry per slot (GCSys). A span switches to it, for good, when an
//            object of a second type or of a type with a destructor is allocated in it (the
//            destructor protocol keeps per-object state in the entries, see gc/sweep.hpp). Large
//            spans point types at `type`.
// Only the thread whose cache owns the span sets `type` or switches it to a table; the table is
// filled with `type` before it is published (release), so a marker reading either way sees every
// object allocated before the switch with its type.
// A slot that is neither allocated nor taken from a cache's window is free (a cached span's
// allocbits are brought up to date when the cache gives it back). Sweeping replaces
// allocbits with the mark bytes (Go's gcmarkBits -> allocBits flip).
//
// sweepgen follows Go's protocol, relative to the heap's sweepgen sg (which grows by 2 per cycle):
//   sg-2: needs sweeping;  sg-1: being swept;  sg: swept and ready for use.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>

#include "runtime/alloc/sizeclasses.hpp"
#include "runtime/core/mem.hpp"

namespace gort::internal {

enum class SpanState : uint8_t { Free, Preparing, InUse };

// The first cache line holds what the marker reads for every object it marks in the span (and
// the allocator's hot fields): one miss per span visited, not two.
struct alignas(64) Span {
  static constexpr int kBitWords = kMaxObjectsPerSpan / 64;

  uintptr_t base = 0;
  size_t npages = 0;
  uint16_t* types = nullptr;  // type index per slot, or null: every object has `type` (above)
  uint8_t* markbytes = nullptr;  // nelems bytes (GCSys); &large_mark for large ones

  // Object layout (InUse spans).
  uint32_t elemsize = 0;
  uint32_t divmagic = 0;
  uint16_t nelems = 0;
  uint8_t sizeclass = 0;  // 0: one large object
  bool noscan = false;
  // See the file comment for the publication. Read and written through atomic_ref, and not
  // initialized by a member initializer: a marker may read the state of a record that is being
  // made again (a stale arena map entry names a freed record), and initializing a member is a
  // plain store; the constructor stores it atomically.
  SpanState state_word;
  bool needzero = false;  // memory may hold old data (not fresh from the OS)
  bool cached = false;    // owned by a thread's cache
  // An object with a destructor was allocated here: the sweep looks at each dead object's type
  // entry (its destructor may be due). Elsewhere a dead slot's entry is left as it is and
  // overwritten when the slot is allocated again.
  bool destructors = false;
  std::atomic<uint32_t> sweepgen{0};
  uint16_t nalloc = 0;    // allocated slots (valid when not cached)
  uint16_t type = 0;  // the type of every object when types is null
  uint8_t large_mark = 0;

  Span* next = nullptr;  // list links: central lists, page-heap free lists
  Span* prev = nullptr;

  uint64_t allocbits[kBitWords];

  // Finalizers, cleanups and weak handles of this span's objects (gc/mfinal.hpp), sorted by
  // offset, and the links of the list of spans that have any.
  struct Special* specials = nullptr;
  struct Special* specials_tail = nullptr;  // objects are mostly given specials in address order
  Span* specials_next = nullptr;
  Span* specials_prev = nullptr;

  Span() noexcept { set_state(SpanState::Free, std::memory_order_relaxed); }
  SpanState state(std::memory_order order) const { return std::atomic_ref<const SpanState>(state_word).load(order); }
  void set_state(SpanState v, std::memory_order order) { std::atomic_ref<SpanState>(state_word).store(v, order); }

  uintptr_t limit() const { return base + (npages << kPageShift); }
  bool contains(uintptr_t p) const { return p >= base && p < limit(); }
  uint32_t object_index(uintptr_t p) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(p - base) * divmagic) >> 32);
  }
  uintptr_t object_addr(uint32_t i) const { return base + uintptr_t{i} * elemsize; }

  uint16_t* type_table() const {
    return std::atomic_ref<uint16_t*>(const_cast<uint16_t*&>(types)).load(std::memory_order_acquire);
  }
  // The type index of slot i (relaxed: see the class comment for the ordering).
  uint16_t type_of(uint32_t i) const {
    if (const uint16_t* t = type_table()) return std::atomic_ref<const uint16_t>(t[i]).load(std::memory_order_relaxed);
    return std::atomic_ref<const uint16_t>(type).load(std::memory_order_relaxed);
  }

  // Relaxed atomics (plain moves on x86-64): a marker reads the bits of a span whose cache
  // stores them (uncache).
  // The number of 64-bit words of the span's slot bitmaps, and the bits of word w that stand for
  // slots (none past nelems).
  int bitmap_words() const { return (nelems + 63) / 64; }
  uint64_t slot_mask(int w) const {
    int n = nelems - w * 64;
    return n < 64 ? (uint64_t{1} << n) - 1 : ~uint64_t{0};
  }
  bool is_allocated(uint32_t i) const { return (alloc_word(i >> 6) >> (i & 63)) & 1; }
  uint64_t alloc_word(int w) const { return std::atomic_ref<const uint64_t>(allocbits[w]).load(std::memory_order_relaxed); }
  void set_alloc_word(int w, uint64_t bits) { std::atomic_ref<uint64_t>(allocbits[w]).store(bits, std::memory_order_relaxed); }
  bool is_marked(uint32_t i) const { return std::atomic_ref<uint8_t>(markbytes[i]).load(std::memory_order_relaxed); }
  // Marks slot i; returns true when it was not marked yet (the caller then scans the object).
  bool try_mark(uint32_t i) {
    std::atomic_ref<uint8_t> m(markbytes[i]);
    if (m.load(std::memory_order_relaxed)) return false;
    m.store(1, std::memory_order_relaxed);
    return true;
  }
  // The mark bytes of slots [64w, 64w+64) as a bit mask.
  uint64_t mark_word(int w) const {
    uint64_t bits = 0;
    int n = nelems - w * 64;
    if (n > 64) n = 64;
    const uint8_t* b = markbytes + w * 64;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      uint64_t x;
      memcpy(&x, b + j, 8);
      bits |= ((x * 0x0102040810204080ull) >> 56) << j;  // byte k (0 or 1) -> bit k
    }
    for (; j < n; ++j) bits |= static_cast<uint64_t>(b[j] != 0) << j;
    return bits;
  }
  void clear_marks() { mem_zero(markbytes, nelems); }
};

// Intrusive doubly linked list of spans, with O(1) splicing (a whole class's spans move to the
// unswept list at every cycle).
class SpanList {
 public:
  bool empty() const { return first_ == nullptr; }
  Span* first() const { return first_; }
  void push(Span* s) {
    s->prev = nullptr;
    s->next = first_;
    if (first_) first_->prev = s; else last_ = s;
    first_ = s;
  }
  void remove(Span* s) {
    if (s->prev) s->prev->next = s->next; else first_ = s->next;
    if (s->next) s->next->prev = s->prev; else last_ = s->prev;
    s->next = s->prev = nullptr;
  }
  Span* pop() {
    Span* s = first_;
    if (s) remove(s);
    return s;
  }
  // Moves every span of `other` to the front of this list.
  void splice(SpanList& other) {
    if (!other.first_) return;
    other.last_->next = first_;
    if (first_) first_->prev = other.last_; else last_ = other.last_;
    first_ = other.first_;
    other.first_ = other.last_ = nullptr;
  }

 private:
  Span* first_ = nullptr;
  Span* last_ = nullptr;
};

}  // namespace gort::internal
