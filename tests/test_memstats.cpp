// MemStats: ports of Go's TestMemStats, TestGcLastTime and TestUserForcedGC, plus exact
// accounting of the allocation paths (small, tiny, large, above BySize) and snapshots under load.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/sizeclasses.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/stats/mprof.hpp"
#include "test_util.hpp"

using gort_test::check_identities;
using gort_test::clean_gc;
using gort_test::read_stats;

namespace {

// 48 bytes with a traced pointer: size class 5 (48), a scan span.
struct Rec48 {
  gort::Ref<Rec48> next;
  int64_t payload[5] = {};
  void trace(gort::Tracer& t) const { t.visit(next); }
};
static_assert(sizeof(Rec48) == 48);

// 100 pointer-free bytes: size class 9 (112), a noscan span.
struct Blob100 {
  unsigned char bytes[100];
};
static_assert(sizeof(Blob100) == 100);

// Allocates n unrelated objects (no object points to another, so no single stale pointer can
// keep more than one of them alive) and drops them.
template <class T>
__attribute__((noinline)) uint64_t alloc_garbage(size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    T* p = gort::make<T>();
    sum += reinterpret_cast<uintptr_t>(p) & 0xff;
  }
  return sum;
}

__attribute__((noinline)) uint64_t alloc_tiny(size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    char* c = gort::make<char>();
    *c = static_cast<char>(i);
    sum += static_cast<unsigned char>(*c);
  }
  return sum;
}

__attribute__((noinline)) uint64_t alloc_large_garbage(size_t n, size_t bytes) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    gort::Array<char>* a = gort::make_array<char>(bytes);
    (*a)[bytes - 1] = 'x';
    sum += a->size();
  }
  return sum;
}

constexpr uint64_t kMiB = 1 << 20;

// Restores a setting at the end of a test, whatever happens.
struct GcPercentGuard {
  int old;
  explicit GcPercentGuard(int pct) : old(gort::debug::SetGCPercent(pct)) {}
  ~GcPercentGuard() { gort::debug::SetGCPercent(old); }
};

}  // namespace

TEST_CASE("memstats: MemStats has exactly Go's fields and types") {
  using M = gort::MemStats;
  CHECK(std::is_same_v<decltype(M::Alloc), uint64_t>);
  CHECK(std::is_same_v<decltype(M::TotalAlloc), uint64_t>);
  CHECK(std::is_same_v<decltype(M::Sys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::Lookups), uint64_t>);
  CHECK(std::is_same_v<decltype(M::Mallocs), uint64_t>);
  CHECK(std::is_same_v<decltype(M::Frees), uint64_t>);
  CHECK(std::is_same_v<decltype(M::HeapAlloc), uint64_t>);
  CHECK(std::is_same_v<decltype(M::HeapSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::HeapIdle), uint64_t>);
  CHECK(std::is_same_v<decltype(M::HeapInuse), uint64_t>);
  CHECK(std::is_same_v<decltype(M::HeapReleased), uint64_t>);
  CHECK(std::is_same_v<decltype(M::HeapObjects), uint64_t>);
  CHECK(std::is_same_v<decltype(M::StackInuse), uint64_t>);
  CHECK(std::is_same_v<decltype(M::StackSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::MSpanInuse), uint64_t>);
  CHECK(std::is_same_v<decltype(M::MSpanSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::MCacheInuse), uint64_t>);
  CHECK(std::is_same_v<decltype(M::MCacheSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::BuckHashSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::GCSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::OtherSys), uint64_t>);
  CHECK(std::is_same_v<decltype(M::NextGC), uint64_t>);
  CHECK(std::is_same_v<decltype(M::LastGC), uint64_t>);
  CHECK(std::is_same_v<decltype(M::PauseTotalNs), uint64_t>);
  CHECK(std::is_same_v<decltype(M::PauseNs), uint64_t[256]>);
  CHECK(std::is_same_v<decltype(M::PauseEnd), uint64_t[256]>);
  CHECK(std::is_same_v<decltype(M::NumGC), uint32_t>);
  CHECK(std::is_same_v<decltype(M::NumForcedGC), uint32_t>);
  CHECK(std::is_same_v<decltype(M::GCCPUFraction), double>);
  CHECK(std::is_same_v<decltype(M::EnableGC), bool>);
  CHECK(std::is_same_v<decltype(M::DebugGC), bool>);
  CHECK(std::extent_v<decltype(M::BySize)> == 61);
  CHECK(std::is_same_v<decltype(M::BySize[0].Size), uint32_t>);
  CHECK(std::is_same_v<decltype(M::BySize[0].Mallocs), uint64_t>);
  CHECK(std::is_same_v<decltype(M::BySize[0].Frees), uint64_t>);
}

// Go's TestMemStats: after a forced GC every field is sane and every identity holds.
TEST_CASE("memstats: sane values and identities after a forced GC (Go's TestMemStats)") {
  // Make sure there is something in every counter: live objects, garbage, at least one forced GC.
  std::vector<gort::Root<Rec48>> keep;
  for (int i = 0; i < 100; ++i) keep.emplace_back(gort::make<Rec48>());
  alloc_garbage<Rec48>(1000);
  // And a sampled allocation, whatever ran before (the profiler's table is mapped then): the
  // thread samples at its next span refill, within a span's worth of 48-byte objects.
  gort::internal::t_front.cache->next_sample = 0;
  for (int i = 0; i < 8192 / 48 + 1; ++i) gort::KeepAlive(gort::make<Rec48>());
  gort::GC();
  gort::MemStats st = read_stats();

  // Fields that cannot be zero.
  CHECK(st.Alloc != 0);
  CHECK(st.TotalAlloc != 0);
  CHECK(st.Sys != 0);
  CHECK(st.Mallocs != 0);
  CHECK(st.Frees != 0);
  CHECK(st.HeapAlloc != 0);
  CHECK(st.HeapSys != 0);
  CHECK(st.HeapInuse != 0);
  CHECK(st.HeapObjects != 0);
  CHECK(st.StackSys != 0);  // the stacks of gort's own threads
  CHECK(st.MSpanInuse != 0);
  CHECK(st.MSpanSys != 0);
  CHECK(st.MCacheInuse != 0);
  CHECK(st.MCacheSys != 0);
  // The heap profiler's table, mapped at its first sample (Go's rule), and its buckets.
  CHECK(st.BuckHashSys >= gort::internal::kBuckHashSize * sizeof(void*));
  CHECK(st.GCSys != 0);
  CHECK(st.OtherSys != 0);
  CHECK(st.NextGC != 0);
  CHECK(st.LastGC != 0);
  CHECK(st.NumGC != 0);
  CHECK(st.NumForcedGC != 0);

  // Insanely high values (overflow?).
  for (uint64_t v : {st.Alloc, st.Sys, st.Mallocs, st.Frees, st.HeapAlloc, st.HeapSys, st.HeapIdle, st.HeapInuse,
                     st.HeapReleased, st.HeapObjects, st.StackInuse, st.StackSys, st.MSpanInuse, st.MSpanSys,
                     st.MCacheInuse, st.MCacheSys, st.BuckHashSys, st.GCSys, st.OtherSys, st.NextGC}) {
    CHECK(v <= uint64_t{10'000'000'000});
  }
  CHECK(st.TotalAlloc <= uint64_t{100'000'000'000});
  CHECK(st.PauseTotalNs <= uint64_t{100'000'000'000});
  CHECK(st.NumGC <= 1'000'000'000u);
  CHECK(st.NumForcedGC <= 1'000'000'000u);
  CHECK(st.GCCPUFraction <= 0.99);

  // Exact values.
  CHECK(st.Lookups == 0);
  CHECK(st.EnableGC == true);
  CHECK(st.DebugGC == false);

  check_identities(st);
  for (auto& r : keep) CHECK(r->next.get() == nullptr);
}

// Go's TestGcLastTime: LastGC is the end of the collection just forced, and its pause is plausible.
TEST_CASE("memstats: LastGC and the latest pause (Go's TestGcLastTime)") {
  auto unix_ns = [] {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  };
  for (int round = 0; round < 3; ++round) {
    uint64_t t0 = unix_ns();
    gort::GC();
    uint64_t t1 = unix_ns();
    gort::MemStats ms = read_stats();
    uint64_t last = ms.LastGC;
    CHECK(t0 <= last);
    CHECK(last <= t1);
    uint32_t latest = (ms.NumGC + 255) % 256;
    uint64_t pause = ms.PauseNs[latest];
    CHECK(pause > 0);
    CHECK(pause <= t1 - t0);
    CHECK(ms.PauseEnd[latest] == last);
    // gort's cycle is a single pause, so the pause began when the cycle began.
    CHECK(ms.PauseEnd[latest] - pause >= t0);
  }
}

// Go's TestUserForcedGC: GC() collects even with GOGC=off, and counts in NumForcedGC.
TEST_CASE("memstats: every GC() is one cycle and one forced cycle, even with GOGC=off (Go's TestUserForcedGC)") {
  GcPercentGuard off(-1);
  gort::MemStats ms1 = read_stats();
  gort::GC();
  gort::MemStats ms2 = read_stats();
  CHECK(ms2.NumGC == ms1.NumGC + 1);
  CHECK(ms2.NumForcedGC == ms1.NumForcedGC + 1);
  for (int i = 0; i < 5; ++i) gort::GC();
  gort::MemStats ms3 = read_stats();
  CHECK(ms3.NumGC == ms2.NumGC + 5);
  CHECK(ms3.NumForcedGC == ms2.NumForcedGC + 5);
  CHECK(ms3.PauseTotalNs > ms2.PauseTotalNs);
  // FreeOSMemory forces one collection too.
  gort::debug::FreeOSMemory();
  gort::MemStats ms4 = read_stats();
  CHECK(ms4.NumGC == ms3.NumGC + 1);
  CHECK(ms4.NumForcedGC == ms3.NumForcedGC + 1);
  check_identities(ms4);
}

TEST_CASE("memstats: ReadMemStats allocates nothing") {
  REQUIRE(gort_test::quiesce());
  gort::MemStats a = read_stats();
  gort::MemStats b = read_stats();
  gort::MemStats c = read_stats();
  CHECK(b.Mallocs == a.Mallocs);
  CHECK(c.Mallocs == a.Mallocs);
  CHECK(c.TotalAlloc == a.TotalAlloc);
  CHECK(c.HeapAlloc == a.HeapAlloc);
  CHECK(c.NumGC == a.NumGC);
}

namespace {
// N objects of T, all in size class kClass of kSize bytes: they count in exactly that class, in
// Mallocs and TotalAlloc; once dead and collected, in Frees.
template <class T>
void check_class_accounting(int kClass, uint64_t kSize, uint64_t N) {
  REQUIRE(gort::internal::size_to_class(sizeof(T)) == kClass);
  REQUIRE(gort_test::quiesce());
  gort::MemStats a = read_stats();
  alloc_garbage<T>(N);
  gort::MemStats b = read_stats();
  CHECK(b.BySize[kClass].Size == kSize);
  CHECK(b.BySize[kClass].Mallocs - a.BySize[kClass].Mallocs == N);
  CHECK(b.Mallocs - a.Mallocs == N);
  CHECK(b.TotalAlloc - a.TotalAlloc == N * kSize);
  REQUIRE(b.NumGC == a.NumGC);  // no collection in between: nothing was freed either
  CHECK(b.HeapAlloc - a.HeapAlloc == N * kSize);
  CHECK(b.HeapObjects - a.HeapObjects == N);
  CHECK(b.Frees == a.Frees);
  for (int i = 0; i < 61; ++i) {
    if (i != kClass) CHECK(b.BySize[i].Mallocs == a.BySize[i].Mallocs);
  }
  check_identities(b);

  clean_gc();
  gort::MemStats c = read_stats();
  CHECK(c.BySize[kClass].Frees - b.BySize[kClass].Frees >= N * 9 / 10);
  CHECK(c.Frees - b.Frees >= N * 9 / 10);
  CHECK(c.HeapAlloc < b.HeapAlloc);
  CHECK(c.Mallocs == b.Mallocs);  // GC() allocates nothing
  check_identities(c);
}
}  // namespace

TEST_CASE("memstats: exact accounting of a traced 48-byte class") { check_class_accounting<Rec48>(5, 48, 10000); }

TEST_CASE("memstats: exact accounting of a pointer-free 100-byte object (class 112)") {
  check_class_accounting<Blob100>(9, 112, 5000);
}

TEST_CASE("memstats: large objects count as whole pages, in no BySize entry") {
  constexpr size_t kBytes = 100000;
  // Array<char> has a size_t header before its elements.
  constexpr uint64_t kObjBytes = sizeof(gort::Array<char>) + kBytes;
  constexpr uint64_t kSpanBytes = (kObjBytes + 8191) / 8192 * 8192;
  static_assert(kSpanBytes == 13 * 8192);
  REQUIRE(gort_test::quiesce());
  gort::MemStats a = read_stats();
  gort::Array<char>* big = gort::make_array<char>(kBytes);
  gort::MemStats b = read_stats();
  CHECK(b.Mallocs - a.Mallocs == 1);
  CHECK(b.TotalAlloc - a.TotalAlloc == kSpanBytes);
  REQUIRE(b.NumGC == a.NumGC);
  CHECK(b.HeapAlloc - a.HeapAlloc == kSpanBytes);
  CHECK(b.HeapObjects - a.HeapObjects == 1);
  CHECK(b.HeapInuse - a.HeapInuse == kSpanBytes);
  bool by_size_unchanged = true;
  for (int i = 0; i < 61; ++i) by_size_unchanged = by_size_unchanged && b.BySize[i].Mallocs == a.BySize[i].Mallocs;
  CHECK(by_size_unchanged);
  CHECK(big->size() == kBytes);
  gort::KeepAlive(big);

  // Twenty dead ones: freed as whole objects (Frees), their bytes leave HeapAlloc.
  clean_gc();
  gort::MemStats c = read_stats();
  alloc_large_garbage(20, kBytes);
  gort::MemStats d = read_stats();
  CHECK(d.Mallocs - c.Mallocs == 20);
  CHECK(d.TotalAlloc - c.TotalAlloc == 20 * kSpanBytes);
  clean_gc();
  gort::MemStats e = read_stats();
  CHECK(e.Frees - d.Frees >= 18);
  CHECK(d.HeapAlloc - e.HeapAlloc >= 18 * kSpanBytes);
  bool by_size_frees_unchanged = true;
  for (int i = 0; i < 61; ++i) by_size_frees_unchanged = by_size_frees_unchanged && e.BySize[i].Frees == d.BySize[i].Frees;
  CHECK(by_size_frees_unchanged);  // nothing small died between d and e
  check_identities(e);
}

TEST_CASE("memstats: small classes above 18432 bytes count in Mallocs but in no BySize entry") {
  // 8 + 20000 bytes: size class 62 (20480), which BySize does not report.
  constexpr size_t kBytes = 20000;
  REQUIRE(gort::internal::size_to_class(sizeof(gort::Array<char>) + kBytes) == 62);
  REQUIRE(gort_test::quiesce());
  gort::MemStats a = read_stats();
  gort::Array<char>* mid = gort::make_array<char>(kBytes);
  gort::MemStats b = read_stats();
  CHECK(b.Mallocs - a.Mallocs == 1);
  CHECK(b.TotalAlloc - a.TotalAlloc == 20480);
  bool by_size_unchanged = true;
  for (int i = 0; i < 61; ++i) by_size_unchanged = by_size_unchanged && b.BySize[i].Mallocs == a.BySize[i].Mallocs;
  CHECK(by_size_unchanged);
  uint64_t by_mallocs = 0;
  for (const auto& c : b.BySize) by_mallocs += c.Mallocs;
  CHECK(by_mallocs < b.Mallocs);
  gort::KeepAlive(mid);
}

TEST_CASE("memstats: tiny allocations count in both Mallocs and Frees") {
  constexpr uint64_t N = 1000;
  // Ends with a collection, which closes the thread's tiny block: the first char opens a new one.
  REQUIRE(gort_test::quiesce());
  gort::MemStats a = read_stats();
  alloc_tiny(N);
  gort::MemStats b = read_stats();
  REQUIRE(b.NumGC == a.NumGC);
  uint64_t blocks = b.BySize[2].Mallocs - a.BySize[2].Mallocs;
  CHECK(b.Mallocs - a.Mallocs == N);
  // 16 one-byte objects per 16-byte block.
  CHECK(blocks >= N / 16);
  CHECK(blocks <= N / 16 + 2);
  // The objects placed into an open block are counted as freed at once...
  CHECK(b.Frees - a.Frees == N - blocks);
  // ...so only the blocks are heap objects and heap bytes.
  CHECK(b.HeapObjects - a.HeapObjects == blocks);
  CHECK(b.TotalAlloc - a.TotalAlloc == blocks * 16);
  CHECK(b.HeapAlloc - a.HeapAlloc == blocks * 16);
  check_identities(b);

  // The blocks die with their objects.
  clean_gc();
  gort::MemStats c = read_stats();
  CHECK(c.BySize[2].Frees - b.BySize[2].Frees >= blocks * 9 / 10);
}

TEST_CASE("memstats: after GC() the heap is the marked heap, and stays put") {
  // Once no destructor is pending, GC() leaves exactly the objects the cycle marked: HeapAlloc is
  // the marked bytes, and nothing is left for background sweeping to change afterwards.
  std::vector<gort::Root<Rec48>> keep;
  for (int i = 0; i < 1000; ++i) keep.emplace_back(gort::make<Rec48>());
  alloc_garbage<Rec48>(20000);
  alloc_garbage<Blob100>(20000);
  REQUIRE(gort_test::quiesce());
  clean_gc();
  gort::MemStats a = read_stats();
  // (The marked count may include an object twice when two markers reach it at the same instant;
  // it only feeds the pacer.)
  uint64_t marked = gort::internal::last_cycle().marked;
  CHECK(a.HeapAlloc <= marked);
  CHECK(marked - a.HeapAlloc <= a.HeapAlloc / 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  gort::MemStats b = read_stats();
  CHECK(b.HeapAlloc == a.HeapAlloc);
  CHECK(b.Frees == a.Frees);
  CHECK(b.HeapInuse == a.HeapInuse);
}

namespace {
__attribute__((noinline)) void large_garbage(int n) {
  for (int i = 0; i < n; ++i) (*gort::make_array<char>(40000))[0] = 1;
}
}  // namespace

TEST_CASE("memstats: GC() returns with every dead object counted in Frees") {
  // Repeatedly: make garbage in many spans, collect, and check that no sweeping is still going on
  // once GC() has returned (Go's runtime.GC waits for in-flight sweeps too): nothing else runs,
  // so no later snapshot may see more objects freed.
  int unstable = 0;
  for (int round = 0; round < 40; ++round) {
    alloc_garbage<Rec48>(20000);
    alloc_garbage<Blob100>(5000);
    large_garbage(100);
    clean_gc();
    gort::MemStats a = read_stats();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    gort::MemStats b = read_stats();
    if (b.Frees != a.Frees || b.HeapInuse != a.HeapInuse || b.HeapAlloc != a.HeapAlloc) ++unstable;
  }
  CHECK(unstable == 0);
}

TEST_CASE("memstats: NextGC follows GOGC") {
  GcPercentGuard pct(100);
  REQUIRE(gort::debug::SetMemoryLimit(-1) == INT64_MAX);  // no GOMEMLIMIT: the goal is GOGC's alone
  clean_gc();
  gort::MemStats m = read_stats();
  CHECK(m.NextGC >= 4 * kMiB);

  // A 16 MiB live heap makes the goal proportional to it rather than the 4 MiB minimum.
  gort::Root<gort::Array<char>> live(gort::make_array<char>(16 * kMiB));
  clean_gc();
  gort::MemStats at100 = read_stats();
  const auto& last = gort::internal::last_cycle();
  uint64_t marked100 = last.marked;
  CHECK(marked100 >= 16 * kMiB);
  CHECK(at100.NextGC == marked100 + (marked100 + last.stacks + last.globals));
  CHECK(at100.NextGC >= 2 * marked100);

  gort::debug::SetGCPercent(50);
  clean_gc();
  gort::MemStats at50 = read_stats();
  uint64_t marked50 = gort::internal::last_cycle().marked;
  CHECK(at50.NextGC < at100.NextGC);
  CHECK(at50.NextGC == marked50 + (marked50 + gort::internal::last_cycle().stacks +
                                   gort::internal::last_cycle().globals) * 50 / 100);
  // About marked * 1.5: stacks and roots are tiny next to 16 MiB.
  CHECK(static_cast<double>(at50.NextGC) >= 1.5 * static_cast<double>(marked50));
  CHECK(static_cast<double>(at50.NextGC) <= 1.6 * static_cast<double>(marked50));

  // GOGC=off: no goal at all.
  gort::debug::SetGCPercent(-1);
  gort::MemStats off = read_stats();
  CHECK(off.NextGC > (uint64_t{1} << 62));
  CHECK(live->size() == 16 * kMiB);
}

TEST_CASE("memstats: snapshots stay consistent while other threads allocate") {
  struct Node {
    gort::Ref<Node> left, right;
    int64_t value = 0;
    void trace(gort::Tracer& t) const { t.visit(left); t.visit(right); }
  };
  struct Build {
    static Node* tree(int depth) {
      Node* n = gort::make<Node>();
      n->value = depth;
      if (depth > 0) {
        n->left = tree(depth - 1);
        n->right = tree(depth - 1);
      }
      return n;
    }
  };
  std::atomic<bool> stop{false};
  std::atomic<long> rounds{0};
  auto mutator = [&](int seed) {
    gort::AttachThread attach;
    long r = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      Node* t = Build::tree(6);
      for (int i = 0; i < 64; ++i) *gort::make<char>() = static_cast<char>(i + seed);  // tiny
      gort::Array<double>* a = gort::make_array<double>(static_cast<size_t>(16 + (r % 64) * 32));
      (*a)[0] = static_cast<double>(t->value);
      if (r % 16 == 0) gort::make_array<char>(40000 + static_cast<size_t>(seed));  // large
      ++r;
    }
    rounds.fetch_add(r);
  };
  std::thread t1(mutator, 1), t2(mutator, 2);
  gort::MemStats prev = read_stats();
  for (int i = 0; i < 200; ++i) {
    gort::MemStats m = read_stats();
    check_identities(m);
    CHECK(m.Mallocs >= prev.Mallocs);
    CHECK(m.Frees >= prev.Frees);
    CHECK(m.TotalAlloc >= prev.TotalAlloc);
    CHECK(m.NumGC >= prev.NumGC);
    CHECK(m.PauseTotalNs >= prev.PauseTotalNs);
    CHECK(m.HeapSys >= prev.HeapSys);
    bool by_size_monotonic = true;
    for (int c = 0; c < 61; ++c)
      by_size_monotonic = by_size_monotonic && m.BySize[c].Mallocs >= prev.BySize[c].Mallocs &&
                          m.BySize[c].Frees >= prev.BySize[c].Frees;
    CHECK(by_size_monotonic);
    prev = m;
    if (i % 50 == 49) gort::GC();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop = true;
  t1.join();
  t2.join();
  CHECK(rounds.load() > 0);
  gort::MemStats end = read_stats();
  check_identities(end);
  CHECK(end.NumGC > 0);
}

TEST_CASE("memstats: ReadMemStats and ReadGCStats do not stop the world") {
  GcPercentGuard off(-1);  // no collection may stop it meanwhile
  clean_gc();
  uint32_t before = gort::internal::world_epoch();
  gort::debug::GCStats gs;
  for (int i = 0; i < 1000; ++i) {
    check_identities(read_stats());
    gort::debug::ReadGCStats(&gs);
  }
  gort::WaitGroup wg;
  wg.Add(1);
  gort::go([&] {  // from a goroutine too
    static gort::MemStats m;
    for (int i = 0; i < 1000; ++i) gort::ReadMemStats(&m);
    wg.Done();
  });
  wg.Wait();
  CHECK(gort::internal::world_epoch() == before);
}

namespace {
// Recursion with a frame that stays: goroutine stacks grow segments (split stacks) and shrink.
__attribute__((noinline)) int64_t deep(int n, gort::Ref<gort::Array<int64_t>>* keep) {
  volatile int64_t pad[64];
  pad[n % 64] = n;
  if (n == 0) {
    *keep = gort::make_array<int64_t>(8);
    return pad[0];
  }
  return deep(n - 1, keep) + pad[n % 64];
}

// One reader's state: successive snapshots must keep every identity, and the cumulative counts
// never go back.
struct Reader {
  gort::MemStats prev{}, cur{};
  long reads = 0;
  const char* broken = nullptr;
  bool read() {
    gort::ReadMemStats(&cur);
    const char* b = gort_test::broken_identity(cur);
    if (!b && reads > 0) {
      if (cur.Mallocs < prev.Mallocs || cur.Frees < prev.Frees || cur.TotalAlloc < prev.TotalAlloc) b = "counts went back";
      else if (cur.NumGC < prev.NumGC || cur.PauseTotalNs < prev.PauseTotalNs) b = "pause history went back";
    }
    if (b && !broken) broken = b;
    prev = cur;
    ++reads;
    return !b;
  }
};
}  // namespace

TEST_CASE("memstats stress: snapshots read continuously, from goroutines and threads, keep every identity "
          "while goroutines allocate, threads attach and detach, and collections run") {
  struct Node {
    gort::Ref<Node> left, right;
    void trace(gort::Tracer& t) const { t.visit(left); t.visit(right); }
  };
  struct Build {
    static Node* tree(int depth) {
      Node* n = gort::make<Node>();
      if (depth > 0) {
        n->left = tree(depth - 1);
        n->right = tree(depth - 1);
      }
      return n;
    }
  };
  std::atomic<bool> stop{false};
  gort::WaitGroup done;
  constexpr int kMutators = 8, kGoroutineReaders = 2;
  static Reader readers[kGoroutineReaders + 2];  // two goroutines, an attached thread, a plain thread
  for (Reader& r : readers) r = Reader{};
  for (int i = 0; i < kMutators; ++i) {
    done.Add(1);
    gort::go([&, i] {
      for (long r = 0; !stop.load(std::memory_order_relaxed); ++r) {
        Node* t = Build::tree(5);
        for (int k = 0; k < 32; ++k) *gort::make<char>() = static_cast<char>(k);  // tiny
        gort::make_array<double>(static_cast<size_t>(16 + (r % 64) * 32));
        if (r % 32 == i) gort::make_array<char>(40000);  // large
        if (r % 16 == 0) {
          gort::Ref<gort::Array<int64_t>> keep;
          deep(40 + i, &keep);
        }
        gort::KeepAlive(t);
        if (r % 8 == 0) gort::Gosched();
      }
      done.Done();
    });
  }
  for (int i = 0; i < kGoroutineReaders; ++i) {
    done.Add(1);
    gort::go([&, i] {
      while (!stop.load(std::memory_order_relaxed)) {
        readers[i].read();
        gort::Gosched();
      }
      done.Done();
    });
  }
  std::thread attached([&] {
    gort::AttachThread attach;
    while (!stop.load(std::memory_order_relaxed)) readers[kGoroutineReaders].read();
  });
  std::thread plain([&] {  // never attached
    while (!stop.load(std::memory_order_relaxed)) readers[kGoroutineReaders + 1].read();
  });
  std::thread churn([&] {  // threads attach, allocate and detach: their caches come and go
    while (!stop.load(std::memory_order_relaxed)) {
      gort::AttachThread attach;
      for (int k = 0; k < 100; ++k) gort::make_array<char>(static_cast<size_t>(100 + k));
    }
  });
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until) {
    gort::GC();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  done.Wait();
  attached.join();
  plain.join();
  churn.join();
  for (const Reader& r : readers) {
    CHECK_MESSAGE(r.broken == nullptr, (r.broken ? r.broken : ""));
    CHECK(r.reads > 10);
  }
  check_identities(read_stats());
}

TEST_CASE("debug::ReadGCStats: Go's GCStats, the pause history newest first, with quantiles") {
  for (int i = 0; i < 3; ++i) gort::GC();
  gort::debug::GCStats gs, again;
  gs.PauseQuantiles.resize(5);
  gort::MemStats m{};
  // A collection the heap triggers may land between the reads: retry until none did.
  for (int tries = 0;; ++tries) {
    gort::debug::ReadGCStats(&gs);
    gort::ReadMemStats(&m);
    gort::debug::ReadGCStats(&again);
    if (gs.NumGC == again.NumGC && uint64_t(gs.NumGC) == m.NumGC) break;
    REQUIRE(tries < 100);
  }
  using std::chrono::nanoseconds;
  CHECK(gs.NumGC >= 3);
  CHECK(gs.PauseTotal == nanoseconds(m.PauseTotalNs));
  size_t n = std::min<size_t>(size_t(gs.NumGC), 256);
  REQUIRE(gs.Pause.size() == n);
  REQUIRE(gs.PauseEnd.size() == n);
  for (size_t i = 0; i < n; ++i) {
    size_t k = (m.NumGC - 1 - i) % 256;  // MemStats' ring: the newest at (NumGC+255)%256
    CHECK(gs.Pause[i] == nanoseconds(m.PauseNs[k]));
    CHECK(std::chrono::duration_cast<nanoseconds>(gs.PauseEnd[i].time_since_epoch()) == nanoseconds(m.PauseEnd[k]));
    if (i > 0) CHECK(gs.PauseEnd[i] <= gs.PauseEnd[i - 1]);  // newest first
  }
  CHECK(std::chrono::duration_cast<nanoseconds>(gs.LastGC.time_since_epoch()) == nanoseconds(m.LastGC));
  CHECK(gs.PauseEnd[0] == gs.LastGC);
  // Quantiles: minimum, 25%, 50%, 75%, maximum of the history.
  auto [lo, hi] = std::minmax_element(gs.Pause.begin(), gs.Pause.end());
  CHECK(gs.PauseQuantiles[0] == *lo);
  CHECK(gs.PauseQuantiles[4] == *hi);
  for (size_t i = 1; i < 5; ++i) CHECK(gs.PauseQuantiles[i - 1] <= gs.PauseQuantiles[i]);
  std::vector<nanoseconds> sorted(gs.Pause);
  std::sort(sorted.begin(), sorted.end());
  CHECK(gs.PauseQuantiles[2] == sorted[n * 2 / 4]);
  // No quantiles asked for, none given.
  CHECK(again.PauseQuantiles.empty());
}
