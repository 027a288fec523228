#include "runtime/alloc/mcentral.hpp"

#include "runtime/alloc/mheap.hpp"
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

struct TypesNode { TypesNode* next; };
SpinLock g_types_lock;
TypesNode* g_types_free[kNumSizeClasses];
PersistentAlloc g_types_pa(stats().gc_sys);
}  // namespace

Central& central(int spanclass) { return g_central[spanclass]; }
LargeSpans& large_spans() { return g_large; }

uint16_t* types_alloc(int sizeclass) {
  size_t bytes = kClassToObjects[sizeclass] * sizeof(uint16_t);
  {
    LockGuard g(g_types_lock);
    if (TypesNode* n = g_types_free[sizeclass]) {
      g_types_free[sizeclass] = n->next;
      auto* t = reinterpret_cast<uint16_t*>(n);
      memset(t, 0, bytes);
      return t;
    }
  }
  return static_cast<uint16_t*>(g_types_pa.alloc(bytes < sizeof(TypesNode) ? sizeof(TypesNode) : bytes, 8));
}

void types_free(int sizeclass, uint16_t* t) {
  LockGuard g(g_types_lock);
  auto* n = reinterpret_cast<TypesNode*>(t);
  n->next = g_types_free[sizeclass];
  g_types_free[sizeclass] = n;
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
  memset(s->allocbits, 0, sizeof s->allocbits);
  s->clear_marks();
  s->types = s->noscan ? nullptr : types_alloc(cls);
  s->sweepgen.store(gc_state().sweepgen.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

Span* Central::new_span() {
  Span* s = mheap().alloc(kClassToPages[spanclass_ >> 1]);
  init_span(s, spanclass_);
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
    Span* s = unswept_.pop();
    if (!s) break;
    lock_.unlock();
    bool in_use = sweep_span(s, /*may_free=*/false);
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

bool Central::has_unswept() {
  LockGuard g(lock_);
  return !unswept_.empty();
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
