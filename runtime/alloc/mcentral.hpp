// Central span lists, one per span class (Go's mcentral), and the list of large-object spans.
//
// A span class is a size class plus a scan/noscan bit: pointer-free objects live in their own
// spans, which marking never scans. Each span of a class is in exactly one place:
//   partial_  swept, has free slots;      full_  swept, no free slot;
//   unswept_  not yet swept this cycle;   or cached by one thread's Cache (in no list).
// At the end of each mark phase (world stopped) partial_ and full_ move to unswept_; spans are
// then swept lazily, by the thread that needs a span of the class or by the background sweeper.
#pragma once
#include <initializer_list>

#include "runtime/alloc/span.hpp"
#include "runtime/core/lock.hpp"

namespace gort::internal {

class Central {
 public:
  void init(int spanclass) { spanclass_ = spanclass; }
  // A swept span with at least one free slot, now owned by the calling thread's cache.
  Span* cache_span();
  // Takes back a span from a cache (its allocbits and nalloc are up to date).
  void uncache_span(Span* s);
  // For the background sweeper: an unswept span, or nullptr. Return it with put_swept.
  Span* take_unswept();
  void put_swept(Span* s);
  // World stopped: every swept span now needs sweeping for the cycle that just marked.
  void all_unswept();
  // World stopped: calls f(span) for every span of this class that no cache holds.
  template <class F>
  void for_each_span(F&& f) {
    for (SpanList* l : {&partial_, &full_, &unswept_})
      for (Span* s = l->first(); s; s = s->next) f(s);
  }

 private:
  Span* new_span();
  void put_swept_locked(Span* s);

  SpinLock lock_;
  SpanList partial_, full_, unswept_;
  int spanclass_ = 0;
};

// Spans that each hold one large object (over 32 KiB).
class LargeSpans {
 public:
  void add(Span* s);
  Span* take_unswept();
  void put_swept(Span* s);
  void all_unswept();
  template <class F>
  void for_each_span(F&& f) {
    for (SpanList* l : {&swept_, &unswept_})
      for (Span* s = l->first(); s; s = s->next) f(s);
  }

 private:
  SpinLock lock_;
  SpanList swept_, unswept_;
};

Central& central(int spanclass);
LargeSpans& large_spans();

// Lays out a fresh span for the class (object size, count, side tables).
void init_span(Span* s, int spanclass);
// Side table of type indices for a span of the size class (GCSys memory, recycled).
uint16_t* types_alloc(int sizeclass);
void types_free(int sizeclass, uint16_t* t);
// Gives back the side table of an empty small span, if it has one: its next objects share one
// type until a second type or a destructor joins them (span.hpp).
void forget_types(Span* s);
// Mark bytes for a span of the size class (GCSys memory, recycled), zeroed.
uint8_t* markbytes_alloc(int sizeclass);
void markbytes_free(int sizeclass, uint8_t* m);
// Bytes of runtime memory (GCSys) the pools of side tables hold, in use or idle.
uint64_t side_table_sys();
// The most runtime memory a heap byte can bring with it, over all span classes: the mark bytes
// and span structure of a span of uniformly typed objects, per byte of the span.
double max_span_meta_per_byte();

}  // namespace gort::internal
