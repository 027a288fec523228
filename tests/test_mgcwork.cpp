// The marker's unit (runtime/gc/mgcwork.cpp): shading a traced object's children through the
// prefetching queue, and the shading of a just-constructed object.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <mutex>
#include <vector>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "test_util.hpp"

namespace gi = gort::internal;

namespace {

struct Leaf {
  int64_t value = 0;
  gort::Ref<Leaf> next;
  void trace(gort::Tracer& t) const { t.visit(next); }
};

gi::Span* span_of(const void* p) { return gi::mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(p)); }
bool marked(const void* p) {
  gi::Span* s = span_of(p);
  return s->is_marked(s->object_index(reinterpret_cast<uintptr_t>(p)));
}
void unmark(const void* p) {
  gi::Span* s = span_of(p);
  s->markbytes[s->object_index(reinterpret_cast<uintptr_t>(p))] = 0;
}
uint16_t type_of(const void* p) {
  gi::Span* s = span_of(p);
  return s->type_of(s->object_index(reinterpret_cast<uintptr_t>(p)));
}

// No mark runs while it is held: a cycle needs the world lock to begin and to end. Marks set
// here are undone before it is released.
std::unique_lock<std::mutex> quiet_heap() {
  for (;;) {
    gort_test::clean_gc();
    std::unique_lock lk(gi::world_lock());
    if (!gi::gc_marking()) return lk;
  }
}

}  // namespace

TEST_CASE("mgcwork: a traced object's children are all shaded once the worker is done, past the prefetching queue") {
  // More children than the queue holds (16): the early ones are shaded while later ones are
  // queued, the rest when the trace ends.
  constexpr int kChildren = 40;
  auto* arr = gort::make_array<gort::Ref<Leaf>>(kChildren);
  std::vector<Leaf*> children;
  for (int i = 0; i < kChildren; ++i) {
    children.push_back(gort::make<Leaf>());
    (*arr)[i] = children.back();
  }
  auto lk = quiet_heap();
  for (Leaf* c : children) REQUIRE(!marked(c));
  {
    gi::MarkWorker w;
    gi::trace_object(w, type_of(arr), reinterpret_cast<uintptr_t>(arr));
    int shaded = 0;
    for (Leaf* c : children) shaded += marked(c);
    CHECK(shaded == kChildren);
    CHECK(!marked(arr));  // tracing an object shades what it references, not itself
    CHECK(w.has_local_work());  // Leaf has pointers: each shaded child was queued for scanning
    w.discard();
  }
  for (Leaf* c : children) unmark(c);
  gort::KeepAlive(arr);
}

TEST_CASE("mgcwork: a just-constructed object queued by its constructor's shading is marked too") {
  // Normally black already (allocated during the mark); one allocated just before the mark began
  // is white, and must not be scanned and left white.
  Leaf* obj = gort::make<Leaf>();
  Leaf* child = gort::make<Leaf>();
  obj->next = child;
  auto lk = quiet_heap();
  REQUIRE(!marked(obj));
  {
    gi::MarkWorker w;
    w.push_new_object(reinterpret_cast<uintptr_t>(obj));
    CHECK(marked(obj));
    CHECK(w.has_local_work());
    w.discard();
  }
  unmark(obj);
  gort::KeepAlive(obj);
}
