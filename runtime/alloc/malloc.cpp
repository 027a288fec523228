// Allocation entry points (Go's mallocgc).
//
// Three paths, chosen by size and by whether the object has pointers:
//   tiny   pointer-free, trivially destructible, under 16 bytes: packed into the cache's 16-byte
//          tiny block;
//   small  up to 32 KiB: the lowest bit of the thread cache's window of free slots for the
//          object's span class (scan or noscan); the object's type is the span's own
//          (alloc/span.hpp: one compare with the window's copy of it) or goes into the span's
//          side table. make<T> runs this path inline (include/gort/internal/alloc.hpp) and
//          calls allocate() when it misses;
//   large  over 32 KiB: a dedicated span straight from the page heap.
// Memory is handed out zeroed. All of it runs inside a critical section, so a collection never
// sees a half-made allocation; a collection the allocation calls for runs after leaving it.
#include <cstring>
#include <stdexcept>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/panic.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/assist.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/stats/mprof.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {

// Go's mallocgc: a request no heap can hold is a fatal out-of-memory error (its page count would
// wrap and yield a small span).
[[noreturn]] __attribute__((noinline)) void too_large(size_t size) {
  fatal("out of memory: cannot allocate a %zu-byte block (over the %zu-byte limit)", size, kMaxAlloc);
}

[[noreturn]] void not_attached() {
  throw_logic_error(
      "gort: managed allocation on a thread that is not attached "
      "(create a gort::Runtime, or a gort::AttachThread on this thread)");
}

// Zeroes a small object: the common small sizes with inline stores (a memset call costs more
// than the stores themselves), the rest with mem_zero.
inline void zero_small(void* p, size_t size) {
  switch (size) {
    case 16: __builtin_memset(p, 0, 16); break;
    case 24: __builtin_memset(p, 0, 24); break;
    case 32: __builtin_memset(p, 0, 32); break;
    case 48: __builtin_memset(p, 0, 48); break;
    case 64: __builtin_memset(p, 0, 64); break;
    default: mem_zero(p, size);
  }
}

// The slow paths (a new span from the central lists or the page heap, which may map memory;
// the heap profiler's sample, which draws the next distance with libm) run on the M's own stack
// when called on a goroutine (on_system_stack): they call into libc. While a mark runs, the
// first of them in each goroutine or thread scans its own stack (a safe point): from then on its
// allocations and stores need no shading (mbarrier.cpp).
__attribute__((noinline)) void* refill(Cache* c, int spc, unsigned* follow_up) {
  if (cache_next_window(c, spc)) return take_from_window(c->slots[spc]);  // the span's next 64 slots
  void* o;
  on_system_stack([&] {
    if (gc_marking()) scan_own_stack();
    o = cache_next_object(c, spc, follow_up);
  });
  return o;
}

// Records the type of a new object in a span whose objects do not all share one type.
inline void set_type_in_table(Span* s, uint16_t* table, void* o, uint16_t type) {
  store_type(&table[s->object_index(reinterpret_cast<uintptr_t>(o))], type);  // a dead slot's entry is stale
  if (type && !s->destructors && type_info(type).destroy) s->destructors = true;
}

// A new object whose type is not the span's: the span takes the type if it has none yet (and the
// type needs no destructor), or switches to a side table filled with the type it had (span.hpp).
// Only this thread's cache allocates from s, so nothing else writes its type fields.
__attribute__((noinline)) void adopt_type(Span* s, void* o, uint16_t type) {
  bool destroy = type && type_info(type).destroy;
  if (s->type == 0 && !destroy && !s->noscan) {
    std::atomic_ref<uint16_t>(s->type).store(type, std::memory_order_relaxed);  // first object
    return;
  }
  uint16_t* table;
  on_system_stack([&] { table = types_alloc(s->sizeclass); });  // may map memory
  for (uint32_t i = 0; i < s->nelems; ++i) table[i] = s->type;
  std::atomic_ref<uint16_t*>(s->types).store(table, std::memory_order_release);
  set_type_in_table(s, table, o, type);
}

inline void* alloc_small(Cache* c, size_t size, uint16_t type, bool noscan, unsigned* follow_up) {
  int cls = size_to_class(size);
  int spc = span_class(cls, noscan);
  CacheSlot& slot = c->slots[spc];
  void* o = slot.bits ? take_from_window(slot) : refill(c, spc, follow_up);
  count_own(slot.taken);
  Span* s = slot.span;
  if (s->needzero) zero_small(o, s->elemsize);
  if (s->types) [[unlikely]] {
    set_type_in_table(s, s->types, o, type);
  } else if (type != s->type) [[unlikely]] {
    adopt_type(s, o, type);
    slot.type = window_type(s);  // the fast paths' copy
  }
  return o;
}

void* alloc_tiny(Cache* c, size_t size, unsigned* follow_up) {
  uintptr_t off = c->tiny_offset;
  if ((size & 7) == 0) off = round_up(off, 8);
  else if ((size & 3) == 0) off = round_up(off, 4);
  else if ((size & 1) == 0) off = round_up(off, 2);
  if (c->tiny && off + size <= kTinySize) {
    c->tiny_offset = off + size;
    count_own(c->tiny_allocs);
    return reinterpret_cast<void*>(c->tiny + off);
  }
  void* block = alloc_small(c, kTinySize, 0, true, follow_up);
  mem_zero(block, kTinySize);
  // Keep whichever block has more room left, as Go does.
  if (size < c->tiny_offset || c->tiny == 0) {
    c->tiny = reinterpret_cast<uintptr_t>(block);
    c->tiny_offset = size;
  }
  return block;
}

void* alloc_large(Cache* c, size_t size, uint16_t type, bool noscan, unsigned* follow_up) {
  size_t npages = (size + kPageSize - 1) >> kPageShift;
  Span* s;
  on_system_stack([&] {
    if (gc_marking()) scan_own_stack();
    s = mheap().alloc(npages);
    c->next_sample -= static_cast<int64_t>(npages << kPageShift);  // the profiler's count
    if (c->next_sample < 0) {
      *follow_up |= kSampled;
      c->next_sample = next_sample_distance();
    }
  });
  s->sizeclass = 0;
  s->noscan = noscan;
  s->elemsize = static_cast<uint32_t>(npages << kPageShift);
  s->divmagic = 0;  // every offset maps to object 0
  s->nelems = 1;
  s->nalloc = 1;
  s->cached = false;
  mem_zero(s->allocbits, sizeof s->allocbits);
  s->allocbits[0] = 1;
  s->large_mark = gc_marking() ? 1 : 0;  // allocate-black
  s->markbytes = &s->large_mark;
  s->type = type;
  s->types = &s->type;
  s->destructors = type && type_info(type).destroy;
  s->sweepgen.store(gc_state().sweepgen.load(std::memory_order_relaxed), std::memory_order_relaxed);
  PageHeap::publish(s);
  if (s->needzero) mem_zero(reinterpret_cast<void*>(s->base), size);
  uint64_t bytes = npages << kPageShift;
  {
    StatsUpdate batch;
    stats().large_mallocs.fetch_add(1, std::memory_order_relaxed);
    stats().large_alloc_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  uint64_t live = gc_state().heap_live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (live >= gc_state().trigger.load(std::memory_order_relaxed)) *follow_up |= kGcNeeded;
  if (gc_marking()) c->assist_debt += static_cast<int64_t>(bytes);
  large_spans().add(s);
  return reinterpret_cast<void*>(s->base);
}

// Everything but the fast path of allocate(), kept out of it: inlined there, the large-object
// path made every allocation save six registers and build a 104-byte frame (now three pushes).
__attribute__((noinline)) void* allocate_slow(Cache* c, size_t size, uint16_t type, bool noscan) {
  if (!c) [[unlikely]] not_attached();
  check_not_forked_child("a managed allocation");
  if (size == 0) size = 1;
  if (size > kMaxAlloc) [[unlikely]] too_large(size);
  unsigned follow_up = 0;
  void* p;
  enter_critical();
  if (size <= kMaxSmallSize) {
    if (type == 0 && size < kTinySize) p = alloc_tiny(c, size, &follow_up);
    else p = alloc_small(c, size, type, noscan, &follow_up);
  } else {
    p = alloc_large(c, size, type, noscan, &follow_up);
  }
  leave_critical();
  if (follow_up) [[unlikely]] {
    if (follow_up & kSampled) profile_alloc(p, size);  // the heap profiler's sample
    if (follow_up & kGcNeeded) gc_start_heap();
    // Waiting for the mark to start parks a goroutine, which may resume on another M: the cache
    // (and the debt) is that M's now, and the first one belongs to whatever runs there.
    c = t_front.cache;
  }
  // Pays for what it took while a mark runs (Go's gcAssistAlloc), so the heap goal holds.
  if (c->assist_debt > 0 && gc_marking()) [[unlikely]] gc_assist(c);
  return p;
}

// The fast path's way into the slow path, a tail call from inside its critical section (so that
// the fast path saves no register and builds no frame).
__attribute__((noinline)) void* leave_then_allocate_slow(Cache* c, size_t size, uint16_t type, bool noscan) {
  leave_critical();
  return allocate_slow(c, size, type, noscan);
}

}  // namespace

void* stop_then_return(void* obj) {
  suspend_self();
  return obj;
}

// The fast path for sizes known only at run time (make_array, and make<T> where the inline path
// of include/gort/internal/alloc.hpp missed or is not used): the same window, the class looked up.
// assist_debt only grows in the slow paths (refills, large objects), so none is due here.
void* allocate(size_t size, uint16_t type, bool noscan) {
  Cache* c = t_front.cache;
  if (!c || size - 1 >= kMaxSmallSize || (type == 0 && size < kTinySize)) [[unlikely]]
    return allocate_slow(c, size, type, noscan);
  CacheSlot& slot = c->slots[span_class(size_to_class(size), noscan)];
  enter_critical();
  if (!slot.bits || slot.type != type) [[unlikely]] return leave_then_allocate_slow(c, size, type, noscan);
  void* o = take_from_window(slot);
  count_own(slot.taken);
  if (slot.needzero) zero_small(o, slot.elemsize);  // else fresh from the OS: zero
  if (leave_critical_to_stop()) [[unlikely]] return stop_then_return(o);
  return o;
}

// A constructor threw: the object must never be traced or destroyed. In a span with a table its
// entry becomes 0; in a uniform span (trivially destructible types only) its memory is zeroed,
// which its type traces as null fields.
void abandon(void* obj) noexcept {
  CriticalSection cs;
  Span* s = mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(obj));
  if (!s) return;
  if (uint16_t* table = s->type_table()) store_type(&table[s->object_index(reinterpret_cast<uintptr_t>(obj))], 0);
  else mem_zero(obj, s->elemsize);
}

}  // namespace gort::internal
