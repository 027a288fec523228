// The pool of idle stack segments (design in segments.hpp).
#include "runtime/sched/segments.hpp"

#include <atomic>

#include "runtime/core/lock.hpp"
#include "runtime/core/mem.hpp"
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

// A goroutine's segment becomes idle (or the reverse, delta < 0): from StackInuse to StackSys.
void count_idle(int64_t delta) {
  StatsUpdate batch;
  stack_count_segments(-delta);
  stats().stack_sys.add(delta);
  g_idle_bytes.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

// Unmaps one segment through libgcc (which also frees the blocks of dynamic allocations, alloca
// in split-stack code, that it may carry). The caller moves its accounting.
void unmap_segment(Segment* x) {
  x->next = nullptr;
  void* ctx[10] = {};
  ctx[0] = x;
  __splitstack_releasecontext(ctx);
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
  if (!from_pool || g_pooled.load(std::memory_order_relaxed) == 0) return nullptr;
  LockGuard g(g_pool.lock);
  if (Segment* x = pop(g_pool.fresh, true)) return x;
  return pop(g_pool.aged, true);
}

}  // namespace

bool segments_take_spares(Stack& s, StackContext& c, SegmentCache* cache) {
  auto* list = static_cast<Segment*>(c.words[0]);
  if (!list || c.current()) return false;
  c.words[0] = nullptr;
  int64_t pooled = 0, freed = 0;
  bool used = false;
  for (Segment* x = list; x;) {
    Segment* next = x->next;
    used |= x->old_stack != nullptr;  // libgcc sets it whenever it enters a segment
    if (x->dynamic_allocation || x->free_dynamic_allocation) {
      freed += static_cast<int64_t>(seg_bytes(x));
      unmap_segment(x);
    } else {
      pooled += static_cast<int64_t>(seg_bytes(x));
      cache_put(cache, x);
    }
    x = next;
  }
  if (freed) stack_count_segments(-freed);
  count_idle(pooled);
  s.segments = nullptr;
  s.segment_bytes = 0;
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
  s.segment_bytes = seg_bytes(x);
  count_idle(-static_cast<int64_t>(s.segment_bytes));
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
  if (bytes == 0) return;
  stats().stack_sys.add(-bytes);
  g_idle_bytes.fetch_sub(static_cast<uint64_t>(bytes), std::memory_order_relaxed);
}

uint64_t segments_idle_bytes() { return g_idle_bytes.load(std::memory_order_relaxed); }

#else

bool segments_take_spares(Stack&, StackContext&, SegmentCache*) { return false; }
void segments_lend(Stack&, StackContext&, SegmentCache*, bool) {}
void segments_release_idle() {}
uint64_t segments_idle_bytes() { return 0; }

#endif

}  // namespace gort::internal
