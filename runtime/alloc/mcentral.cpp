#include "runtime/alloc/mcentral.hpp"

#include <algorithm>
#include <atomic>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/sweep.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
Central g_central[kNumSpanClasses];
LargeSpans g_large;
struct CentralInit {
  CentralInit() {
    for (int i = 0; i < kNumSpanClasses; ++i) g_central[i].init(i);
  }
} g_central_init;

std::atomic<uint64_t> g_side_table_sys{0};

// Per-class pools of side tables: type indices and mark bytes, recycled between spans.
class SideTablePool {
 public:
  void* alloc(int sizeclass, size_t bytes) {
    {
      LockGuard g(lock_);
      if (Node* n = free_[sizeclass]) {
        free_[sizeclass] = n->next;
        mem_zero(n, bytes);
        return n;
      }
    }
    size_t n = bytes < sizeof(Node) ? sizeof(Node) : bytes;
    g_side_table_sys.fetch_add(n, std::memory_order_relaxed);
    return pa_.alloc(n, 8);
  }
  void free(int sizeclass, void* p) {
    LockGuard g(lock_);
    auto* n = static_cast<Node*>(p);
    // An atomic store: weak_target may still read a freed mark byte here (its speculative read,
    // which it discards when the span's sweepgen moved; mfinal.cpp).
    std::atomic_ref<Node*>(n->next).store(free_[sizeclass], std::memory_order_relaxed);
    free_[sizeclass] = n;
  }

 private:
  struct Node { Node* next; };
  SpinLock lock_;
  Node* free_[kNumSizeClasses] = {};
  PersistentAlloc pa_{stats().gc_sys};
};
SideTablePool g_types_pool, g_marks_pool;
}  // namespace

Central& central(int spanclass) { return g_central[spanclass]; }
LargeSpans& large_spans() { return g_large; }

uint16_t* types_alloc(int sizeclass) {
  return static_cast<uint16_t*>(g_types_pool.alloc(sizeclass, kClassToObjects[sizeclass] * sizeof(uint16_t)));
}
void types_free(int sizeclass, uint16_t* t) { g_types_pool.free(sizeclass, t); }
void forget_types(Span* s) {
  if (s->types) types_free(s->sizeclass, s->types);
  s->types = nullptr;
  s->type = 0;
  s->destructors = false;
}
uint8_t* markbytes_alloc(int sizeclass) {
  return static_cast<uint8_t*>(g_marks_pool.alloc(sizeclass, round_up(kClassToObjects[sizeclass], 8)));
}
void markbytes_free(int sizeclass, uint8_t* m) { g_marks_pool.free(sizeclass, m); }
uint64_t side_table_sys() { return g_side_table_sys.load(std::memory_order_relaxed); }

double max_span_meta_per_byte() {
  static const double most = [] {  // a property of the size classes: computed once
    double m = 0;
    for (int cls = 1; cls < kNumSizeClasses; ++cls) {
      double bytes = static_cast<double>(kClassToPages[cls]) * kPageSize;
      m = std::max(m, (static_cast<double>(round_up(kClassToObjects[cls], 8)) + sizeof(Span)) / bytes);
    }
    return m;
  }();
  return most;
}

void init_span(Span* s, int spanclass) {
  int cls = spanclass >> 1;
  s->sizeclass = static_cast<uint8_t>(cls);
  s->noscan = spanclass & 1;
  s->elemsize = kClassToSize[cls];
  s->divmagic = kClassToDivMagic[cls];
  s->nelems = kClassToObjects[cls];
  s->nalloc = 0;
  s->cached = false;
  s->destructors = false;
  mem_zero(s->allocbits, sizeof s->allocbits);
  s->markbytes = markbytes_alloc(cls);
  s->types = nullptr;  // uniform until a second type or a destructor shows up (span.hpp)
  s->type = 0;
  s->sweepgen.store(gc_state().sweepgen.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

Span* Central::new_span() {
  Span* s = mheap().alloc(kClassToPages[spanclass_ >> 1]);
  init_span(s, spanclass_);
  PageHeap::publish(s);
  return s;
}

Span* Central::cache_span() {
  lock_.lock();
  for (;;) {
    if (Span* s = partial_.pop()) {
      s->cached = true;
      lock_.unlock();
      return s;
    }
    bool in_use;
    Span* s;
    {
      SweepScope sweeping;  // from taking it off the list to its sweep's end
      s = unswept_.pop();
      if (!s) break;
      lock_.unlock();
      in_use = sweep_span(s, /*may_free=*/false);  // the span is reused, never freed: no one waits for it
    }
    lock_.lock();
    if (in_use) {
      if (s->nalloc < s->nelems) {
        s->cached = true;
        lock_.unlock();
        return s;
      }
      full_.push(s);
    }
  }
  lock_.unlock();
  Span* s = new_span();
  s->cached = true;
  return s;
}

void Central::put_swept_locked(Span* s) {
  if (s->nalloc < s->nelems) partial_.push(s); else full_.push(s);
}

void Central::uncache_span(Span* s) {
  s->cached = false;
  LockGuard g(lock_);
  put_swept_locked(s);
}

Span* Central::take_unswept() {
  LockGuard g(lock_);
  return unswept_.pop();
}

void Central::put_swept(Span* s) {
  LockGuard g(lock_);
  put_swept_locked(s);
}

void Central::all_unswept() {
  LockGuard g(lock_);
  unswept_.splice(partial_);
  unswept_.splice(full_);
}

void LargeSpans::add(Span* s) {
  LockGuard g(lock_);
  swept_.push(s);
}

Span* LargeSpans::take_unswept() {
  LockGuard g(lock_);
  return unswept_.pop();
}

void LargeSpans::put_swept(Span* s) {
  LockGuard g(lock_);
  swept_.push(s);
}

void LargeSpans::all_unswept() {
  LockGuard g(lock_);
  unswept_.splice(swept_);
}

}  // namespace gort::internal
