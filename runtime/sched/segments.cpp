// The pool of idle stack segments (design in segments.hpp).
#include "runtime/sched/segments.hpp"

#include <atomic>
#include <cstdlib>

#include "runtime/core/lock.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

#if GORT_SPLIT_STACK

namespace {

// The global pool: `fresh` took segments since the last collection, `aged` before it. After a
// collection the aged ones are freed and the fresh ones age.
struct Pool {
  SpinLock lock;
  Segment* fresh = nullptr;
  Segment* aged = nullptr;
};
Pool g_pool;
std::atomic<uint64_t> g_idle_bytes{0};
std::atomic<size_t> g_pooled{0};  // segments in the global pool: an empty pool costs no lock

// Idle segments (pool, caches, and lent ones not noted yet) count in StackSys only.
void count_idle(int64_t delta) {
  stats().stack_sys.add(delta);
  g_idle_bytes.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

// Unmaps one segment through libgcc (which also frees the blocks of dynamic allocations, alloca
// in split-stack code, that it may carry). The caller moves its accounting.
// Out of line (as chunks_allowed): a function that calls libgcc's __splitstack_* or libc gets
// the linker's 1 MiB prologue (core/splitstack.hpp), which segments_lend and
// segments_take_spares, run at every switch, should not.
__attribute__((noinline)) void unmap_segment(Segment* x) {
  x->next = nullptr;
  void* ctx[10] = {};
  ctx[0] = x;
  __splitstack_releasecontext(ctx);
}

// Segments gort maps itself, several per mmap (one system call and one kernel mapping for many:
// the mmap lock is what goroutines that all grow contend on), laid out as libgcc lays out its
// own, so that libgcc can use, and if it must, unmap one (a spare too small for a request: it
// unmaps it whole, header to end, a hole the kernel handles). Big enough for a call into code
// built without split-stack (1 MiB free) with a 60 KiB frame. Not with SPLIT_STACK_GUARD set:
// libgcc then also unmaps the page below each segment, which here is another segment's end.
constexpr size_t kSegmentBytes = (1 << 20) + (64 << 10);
constexpr int kSegmentsPerChunk = 4;
__attribute__((noinline)) bool chunks_allowed() {
  static const bool allowed = std::getenv("SPLIT_STACK_GUARD") == nullptr;
  return allowed;
}

Segment* map_segments() {
  auto* base = static_cast<char*>(sys_alloc(kSegmentBytes * kSegmentsPerChunk, stats().stack_sys));
  g_idle_bytes.fetch_add(kSegmentBytes * kSegmentsPerChunk, std::memory_order_relaxed);
  Segment* list = nullptr;
  for (int i = kSegmentsPerChunk - 1; i >= 0; --i) {
    auto* x = reinterpret_cast<Segment*>(base + i * kSegmentBytes);
    x->size = kSegmentBytes - sizeof(Segment);  // the rest is zero, as libgcc's fresh segments
    x->next = list;
    list = x;
  }
  return list;
}

void push(Segment*& list, Segment* x, bool global = false) {
  if (global) g_pooled.fetch_add(1, std::memory_order_relaxed);
  x->prev = nullptr;
  x->next = list;
  list = x;
}

Segment* pop(Segment*& list, bool global = false) {
  Segment* x = list;
  if (x) list = x->next;
  if (x && global) g_pooled.fetch_sub(1, std::memory_order_relaxed);
  return x;
}

void cache_put(SegmentCache* cache, Segment* x) {
  if (!cache) {
    LockGuard g(g_pool.lock);
    push(g_pool.fresh, x, true);
    return;
  }
  Segment* list = static_cast<Segment*>(cache->list);
  push(list, x);
  if (++cache->n > kCacheSegments) {  // half to the pool, in one batch
    LockGuard g(g_pool.lock);
    while (cache->n > kCacheSegments / 2) {
      push(g_pool.fresh, pop(list), true);
      --cache->n;
    }
  }
  cache->list = list;
}

Segment* cache_get(SegmentCache* cache, bool from_pool) {
  if (cache && cache->n > 0) {
    Segment* list = static_cast<Segment*>(cache->list);
    Segment* x = pop(list);
    cache->list = list;
    --cache->n;
    return x;
  }
  if (!from_pool) return nullptr;
  if (g_pooled.load(std::memory_order_relaxed) > 0) {
    LockGuard g(g_pool.lock);
    if (Segment* x = pop(g_pool.fresh, true)) return x;
    if (Segment* x = pop(g_pool.aged, true)) return x;
  }
  if (!cache || !chunks_allowed()) return nullptr;  // libgcc maps one when it needs it
  // The pool is dry: map a chunk; one for the caller, the rest to its P's cache and the pool.
  Segment* list = map_segments();
  Segment* x = pop(list);
  while (Segment* y = pop(list)) cache_put(cache, y);
  return x;
}

}  // namespace

// Accounting, per stack: segment_bytes (noted) are in StackInuse, lent_bytes in StackSys (idle),
// whatever libgcc mapped since the last note in neither. Lending and taking back a segment the
// goroutine did not keep past its switch changes no figure: the common case costs no StatsUpdate.
bool segments_take_spares(Stack& s, StackContext& c, SegmentCache* cache) {
  auto* list = static_cast<Segment*>(c.words[0]);
  if (!list || c.current()) return false;
  c.words[0] = nullptr;
  int64_t pooled = 0;
  bool used = false;
  for (Segment* x = list; x;) {
    Segment* next = x->next;
    used |= x->old_stack != nullptr;  // libgcc sets it whenever it enters a segment
    if (x->dynamic_allocation || x->free_dynamic_allocation) {
      unmap_segment(x);  // rare (alloca beyond a segment): not worth keeping
    } else {
      pooled += static_cast<int64_t>(seg_bytes(x));
      cache_put(cache, x);
    }
    x = next;
  }
  int64_t noted = static_cast<int64_t>(s.segment_bytes), lent = static_cast<int64_t>(s.lent_bytes);
  if (noted || pooled != lent) {
    StatsUpdate batch;
    if (noted) stack_count_segments(-noted);
    if (pooled != lent) count_idle(pooled - lent);
  }
  s.segments = nullptr;
  s.segment_bytes = s.lent_bytes = 0;
  return used;
}

void segments_lend(Stack& s, StackContext& c, SegmentCache* cache, bool from_pool) {
  Segment* x = cache_get(cache, from_pool);
  if (!x) return;
  x->prev = x->next = nullptr;
  x->old_stack = nullptr;  // unused yet (segments_take_spares)
  // Checkmark (gc/mgcmark.hpp): the goroutine's stack may already count as scanned; the frames
  // it builds in this segment must not find another goroutine's words in their unset slots.
  if (checkmark_scrubs_stacks()) [[unlikely]] {
    size_t n = x->size < kScrubDepth ? x->size : kScrubDepth;
    mem_zero(reinterpret_cast<void*>(seg_hi(x) - n), n);
  }
  c.words[0] = x;
  s.segments = x;
  s.lent_bytes = seg_bytes(x);
}

void segments_note_lent(Stack& s) {
  StatsUpdate batch;
  count_idle(-static_cast<int64_t>(s.lent_bytes));
  stack_count_segments(static_cast<int64_t>(s.lent_bytes));
  s.segment_bytes += s.lent_bytes;
  s.lent_bytes = 0;
}

void segments_release_idle() {
  Segment* old;
  {
    LockGuard g(g_pool.lock);
    old = g_pool.aged;
    g_pool.aged = g_pool.fresh;
    g_pool.fresh = nullptr;
  }
  int64_t bytes = 0;
  while (Segment* x = pop(old, true)) {
    bytes += static_cast<int64_t>(seg_bytes(x));
    unmap_segment(x);
  }
  if (bytes) count_idle(-bytes);
}

uint64_t segments_idle_bytes() { return g_idle_bytes.load(std::memory_order_relaxed); }

#else

bool segments_take_spares(Stack&, StackContext&, SegmentCache*) { return false; }
void segments_note_lent(Stack&) {}
void segments_lend(Stack&, StackContext&, SegmentCache*, bool) {}
void segments_release_idle() {}
uint64_t segments_idle_bytes() { return 0; }

#endif

}  // namespace gort::internal
