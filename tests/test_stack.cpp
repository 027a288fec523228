// Goroutine stacks (runtime/sched/stack.hpp) in the build's mode: segmented (the default) or
// fixed. Deep recursion, what StackInuse counts, the collector walking segments, a million
// parked goroutines, exceptions across segments, stack reuse.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sched/proc.hpp"
#include "runtime/sched/segments.hpp"
#include "runtime/sched/stack.hpp"
#include "test_util.hpp"

namespace {
using gort::internal::kSplitStacks;
using gort::internal::kStackSize;

struct Cell {
  gort::Ref<Cell> next;
  long value = 0;
  void trace(gort::Tracer& t) const { t.visit(next); }
};

// ~frame bytes per level; at the bottom, `at_bottom(depth)` runs with every frame still live.
template <class F>
__attribute__((noinline)) long recurse(long depth, F& at_bottom) {
  volatile char frame[200];
  for (int i = 0; i < 200; ++i) frame[i] = static_cast<char>(depth);  // the whole frame, really
  long r = depth == 0 ? at_bottom() : recurse(depth - 1, at_bottom);
  return r + frame[0] - static_cast<char>(depth);
}

uint64_t stack_inuse() { return gort_test::read_stats().StackInuse; }
}  // namespace

TEST_CASE("stack: deep recursion on a goroutine works (split) and its segments count in StackInuse while it parks") {
  if (!kSplitStacks) return;  // fixed stacks: 64 KiB, an overflow is fatal (tested with the sample)
  // 40,000 levels of ~250 bytes: about 10 MB, over a thousand times the first stack.
  constexpr long kDepth = 40000;
  gort::Chan<int> parked_at_bottom, release;
  gort::WaitGroup done;
  done.Add(1);
  std::atomic<long> result{-1};
  gort::go([&, parked_at_bottom, release]() mutable {
    auto bottom = [&]() -> long {
      parked_at_bottom.send(1);
      release.recv();  // parks with every frame above it live, in segments
      return 0;
    };
    result = recurse(kDepth, bottom);
    done.Done();
  });
  uint64_t before = stack_inuse();
  parked_at_bottom.recv();
  // Its segments hold the ~10 MB of frames and are counted once it parks (its stack may have
  // come from a pool with segments grown earlier: StackInuse need not grow, but covers them).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (gort::internal::stack_segment_bytes() < static_cast<uint64_t>(kDepth) * 200 &&
         std::chrono::steady_clock::now() < deadline)
    gort::sleep_for(std::chrono::milliseconds(1));
  CHECK(gort::internal::stack_segment_bytes() >= static_cast<uint64_t>(kDepth) * 200);
  gort::MemStats during = gort_test::read_stats();
  gort_test::check_identities(during);
  CHECK(during.StackInuse >= before);
  release.close();
  done.Wait();
  CHECK(result.load() == 0);
}

TEST_CASE("stack: the collector sees pointers held only in the segments of a parked goroutine") {
  constexpr long kDepth = kSplitStacks ? 20000 : 100;  // fixed stacks: stay within 64 KiB
  constexpr int kGoroutines = 8;
  gort::Chan<int> ready(kGoroutines), release;
  gort::WaitGroup done;
  done.Add(kGoroutines);
  std::atomic<int> intact{0};
  for (int g = 0; g < kGoroutines; ++g) {
    gort::go([&, ready, release, g]() mutable {
      // A list whose head lives only in the deepest frame, below thousands of segments' worth of
      // frames (and one at the top, in the first stack).
      Cell* top = gort::make<Cell>();
      top->value = g;
      auto bottom = [&]() -> long {
        Cell* head = nullptr;
        for (int i = 0; i < 100; ++i) {
          Cell* c = gort::make<Cell>();
          c->value = i;
          c->next = head;
          head = c;
        }
        ready.send(1);
        release.recv();
        long sum = 0;
        for (Cell* c = head; c; c = c->next.get()) sum += c->value;
        return sum == 99 * 100 / 2 ? 0 : 1;
      };
      long bad = recurse(kDepth, bottom);
      if (bad == 0 && top->value == g) intact.fetch_add(1);
      done.Done();
    });
  }
  for (int g = 0; g < kGoroutines; ++g) ready.recv();
  for (int round = 0; round < 5; ++round) {
    for (int k = 0; k < 20000; ++k) gort::make<Cell>()->value = -1;  // garbage to reuse lost memory
    gort::GC();
  }
  release.close();
  done.Wait();
  CHECK(intact.load() == kGoroutines);
}

TEST_CASE("stack: an exception thrown deep in a goroutine unwinds across segments and is caught there") {
  constexpr long kDepth = kSplitStacks ? 20000 : 100;
  gort::WaitGroup done;
  done.Add(1);
  std::atomic<int> caught{0};
  gort::go([&] {
    for (int i = 0; i < 3; ++i) {  // the stack grows again from where the unwinding left it
      static volatile bool always = true;  // (a bottom that could return, for the compiler)
      // Out of line: a throw calls libstdc++, and a function that calls code built without
      // split-stack wants 1 MiB free (libgcc's __morestack_non_split): inlined into recurse,
      // every level would take a 1 MiB segment.
      auto bottom = []() __attribute__((noinline)) -> long {
        if (always) throw std::runtime_error("deep");
        return 0;
      };
      try {
        recurse(kDepth, bottom);
      } catch (const std::runtime_error& e) {
        if (std::string(e.what()) == "deep") caught.fetch_add(1);
      }
    }
    done.Done();
  });
  done.Wait();
  CHECK(caught.load() == 3);
}

namespace {
// StackInuse together with its two parts, from one quiet moment (the finalizer goroutine may
// grow or give back segments at any time).
struct StackView {
  uint64_t inuse, first, segments;
};
StackView stack_view() {
  using namespace gort::internal;
  for (;;) {
    uint64_t first = stack_first_bytes(), segments = stack_segment_bytes();
    uint64_t inuse = gort_test::read_stats().StackInuse;
    if (first == stack_first_bytes() && segments == stack_segment_bytes()) return {inuse, first, segments};
  }
}
}  // namespace

TEST_CASE("memstats: N parked goroutines move StackInuse by the stacks they hold; StackSys includes it") {
  constexpr int kN = 4096;
  StackView before = stack_view();
  CHECK(before.inuse == before.first + before.segments);
  gort::Chan<int> release;
  gort::WaitGroup started, finished;
  started.Add(kN);
  finished.Add(kN);
  std::atomic<int> grew{0};
  for (int i = 0; i < kN; ++i) {
    gort::go([&, release]() mutable {
      // This goroutine's own segments (its stack may come from a pool with some): parking and
      // waking must not add any.
      void *segments, *current;
      gort::internal::stack_current_segments(&segments, &current);
      uint64_t mine = gort::internal::stack_list_bytes(segments);
      started.Done();
      release.recv();
      gort::internal::stack_current_segments(&segments, &current);
      // (It may wake with one segment lent from the pool, ready for growth: not more.)
      if (gort::internal::stack_list_bytes(segments) > std::max<uint64_t>(mine, (1u << 20) + (128u << 10)))
        grew.fetch_add(1);
      finished.Done();
    });
  }
  started.Wait();
  StackView during = stack_view();
  gort::MemStats m = gort_test::read_stats();
  gort_test::check_identities(m);
  CHECK(m.StackSys >= m.StackInuse);
  CHECK(during.inuse == during.first + during.segments);
  // Each parked goroutine holds one first stack; stacks pooled before may serve some, new ones
  // come in chunks (split: 1 MiB) or one by one (fixed).
  CHECK(during.first >= before.first);
  CHECK(during.first - before.first <= static_cast<uint64_t>(kN) * kStackSize + (1 << 20));
  if (!kSplitStacks) CHECK(during.first % kStackSize == 0);
  release.close();
  finished.Wait();
  CHECK(grew.load() == 0);
  // Finished first stacks go to the pools, still counted.
  StackView after = stack_view();
  CHECK(after.first == during.first);
  // Spawning as many again reuses the pools: no new stack memory, but for the stacks another
  // processor's cache holds (at most 32 each) while this one's is empty.
  gort::WaitGroup again;
  again.Add(kN);
  gort::Chan<int> release2;
  for (int i = 0; i < kN; ++i) gort::go([&, release2]() mutable { release2.recv(); again.Done(); });
  gort::sleep_for(std::chrono::milliseconds(20));
  uint64_t cached_elsewhere = 32ull * static_cast<uint64_t>(gort::GOMAXPROCS(0)) * kStackSize;
  CHECK(stack_view().first - after.first <= cached_elsewhere + (kSplitStacks ? (1 << 20) : 0));
  release2.close();
  again.Wait();
}

TEST_CASE("stack: a million goroutines parked at once (split stacks)") {
  if (!kSplitStacks) return;  // fixed stacks: two mappings each, the kernel's limit is ~65,000
  constexpr int kN = 1000000;
  StackView before = stack_view();
  gort::Chan<int> release;
  gort::WaitGroup started, finished;
  started.Add(kN);
  finished.Add(kN);
  for (int i = 0; i < kN; ++i) {
    gort::go([&, release]() mutable {
      started.Done();
      release.recv();
      finished.Done();
    });
  }
  started.Wait();
  CHECK(gort::NumGoroutine() >= kN);
  StackView during = stack_view();
  MESSAGE("1,000,000 parked goroutines: StackInuse grew by " << (during.inuse - before.inuse) / kN << " bytes each");
  // First stacks only: the finalizer goroutine may grow a segment meanwhile.
  CHECK(during.first - before.first <= static_cast<uint64_t>(kN) * kStackSize);
  release.close();
  finished.Wait();
}

#if GORT_SPLIT_STACK  // fixed stacks: on_system_stack is a plain call
TEST_CASE("stack: on a goroutine, on_system_stack runs on the M's own stack; collections started there see both stacks") {
  gort::WaitGroup done;
  done.Add(1);
  std::atomic<bool> moved{false}, guard_off{false}, kept{false};
  gort::go([&] {
    auto here = [] {
      uintptr_t sp;
      asm volatile("movq %%rsp, %0" : "=r"(sp));
      return sp;
    };
    uintptr_t goroutine_sp = here();
    uintptr_t inner_sp = 0, guard = 1;
    gort::internal::on_system_stack([&] {
      inner_sp = here();
      guard = gort::internal::split_guard();
    });
    // The M's stack is another mapping, far from this goroutine's 8 KiB first stack.
    moved = inner_sp + kStackSize < goroutine_sp || inner_sp > goroutine_sp + kStackSize;
    guard_off = guard == 0;
    // A collection run from here (on the M's stack) still sees this frame's only reference.
    Cell* mine = gort::make<Cell>();
    mine->value = 4242;
    for (int i = 0; i < 3; ++i) {
      for (int k = 0; k < 20000; ++k) gort::make<Cell>()->value = -1;
      gort::GC();
    }
    kept = mine->value == 4242;
    done.Done();
  });
  done.Wait();
  CHECK(moved.load());
  CHECK(guard_off.load());
  CHECK(kept.load());
}
#endif

namespace {
// Recurses `depth` small frames, then yields and collects repeatedly holding its only reference
// to a fresh object in the deepest frame: some of the goroutines below sit at every distance from
// the end of their first stack or of a segment when a collection stops them.
__attribute__((noinline)) bool hold_while_yielding(int depth, long tag) {
  volatile long frame[4] = {tag, 0, 0, 0};
  if (depth > 0) return hold_while_yielding(depth - 1, tag) && frame[0] == tag;
  Cell* mine = gort::make<Cell>();
  mine->value = tag;
  bool ok = true;
  for (int i = 0; i < 20; ++i) {
    gort::Gosched();
    for (int k = 0; k < 50; ++k) gort::make<Cell>()->value = -1;  // garbage that would reuse it
    ok = ok && mine->value == tag;
  }
  return ok;
}
}  // namespace

TEST_CASE("stack: goroutines stopped at every distance from a stack's or segment's end keep their objects") {
  constexpr int kGoroutines = 160;
  gort::WaitGroup done;
  done.Add(kGoroutines);
  std::atomic<int> intact{0};
  std::atomic<bool> stop{false};
  for (int g = 0; g < kGoroutines; ++g) {
    // Frames of ~64 bytes: depths 0..~480 cross the 8 KiB first stack's end and a segment's.
    int depth = g * 3;
    gort::go([&, depth, g] {
      if (hold_while_yielding(depth, 1000 + g)) intact.fetch_add(1);
      done.Done();
    });
  }
  std::thread collector([&] {
    gort::AttachThread attach;
    while (!stop.load()) gort::GC();
  });
  done.Wait();
  stop = true;
  collector.join();
  CHECK(intact.load() == kGoroutines);
}

#if GORT_SPLIT_STACK
namespace {
// libgcc's header at the start of a segment (generic-morestack.c's struct stack_segment; stack_init
// checks gort's reading of it at start).
struct FakeSegment {
  void* prev;
  void* next;
  size_t size;
  void* old_stack;
  void* dynamic_allocation;
  void* free_dynamic_allocation;
  void* extra;
};

// The ranges a walk visits, merged; covers(a, b): every byte of [a, b) was visited.
struct Visited {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  void operator()(uintptr_t a, uintptr_t b) { ranges.emplace_back(a, b); }
  bool covers(uintptr_t a, uintptr_t b) const {
    auto r = ranges;
    std::sort(r.begin(), r.end());
    for (auto [lo, hi] : r) {
      if (a >= b) break;
      if (lo <= a && hi > a) a = hi;
    }
    return a >= b;
  }
};
}  // namespace

TEST_CASE("stack walk: a stack pointer at every distance from the end of a segment mapped right below its first stack") {
  // The kernel often maps a segment directly below another mapping, so a segment's end can be the
  // very address where the goroutine's own first stack begins. A walk that took a stack pointer
  // "a few bytes below the first stack" for one on the first stack lost the segment's top frames
  // (issue #8). Synthetic layout, one mapping: [segment header | segment ... | first stack).
  using gort::internal::for_each_stack_range;
  using gort::internal::kRedZone;
  constexpr size_t kSegment = 64 << 10;
  void* m = mmap(nullptr, kSegment + kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(m != MAP_FAILED);
  auto* seg = static_cast<FakeSegment*>(m);
  seg->size = kSegment - sizeof(FakeSegment);
  const uintptr_t lo = reinterpret_cast<uintptr_t>(m) + kSegment, hi = lo + kStackSize;
  // The segment was entered from a frame on the first stack: __splitstack_find resumes 12 words
  // below the caller's arguments (the registers __morestack saved).
  const uintptr_t old_stack = hi - 512;
  seg->old_stack = reinterpret_cast<void*>(old_stack);
  const uintptr_t from_old = old_stack - 12 * sizeof(void*);
  for (uintptr_t depth = 0; depth <= 1024; depth += 8) {
    const uintptr_t sp = lo - depth;  // on the segment, `depth` bytes under its end
    for (uintptr_t below : {uintptr_t{0}, kRedZone}) {
      // Running on the segment (current), and just popped from it (current null: __morestack
      // between __generic_releasestack and the switch back).
      for (void* current : {static_cast<void*>(seg), static_cast<void*>(nullptr)}) {
        Visited v;
        for_each_stack_range(sp, below, lo, hi, seg, current, v);
        CAPTURE(depth);
        CAPTURE(below);
        CHECK(v.covers(std::max(sp - below, reinterpret_cast<uintptr_t>(seg + 1)), lo));
        CHECK(v.covers(from_old, hi));
      }
    }
  }
  // On the first stack itself, at every distance from its start: [sp - red zone, hi), never under lo.
  for (uintptr_t depth = 8; depth < kStackSize; depth += 8) {
    const uintptr_t sp = lo + depth;
    Visited v;
    for_each_stack_range(sp, kRedZone, lo, hi, seg, nullptr, v);
    CAPTURE(depth);
    CHECK(v.covers(std::max(sp - kRedZone, lo), hi));
    for (auto [a, b] : v.ranges) CHECK(a >= lo);
  }
  munmap(m, kSegment + kStackSize);
}
#endif

namespace {
// What users write on a goroutine: a string, a vector, snprintf, and strtoul, a libc function
// gort does not stand in for (runtime/sched/cxxcall.cpp does for operator new, snprintf, memcpy
// and a few more): libc is built without split-stack, so the function runs on a 1 MiB segment.
__attribute__((noinline)) size_t ordinary_work(int i) {
  std::string s = "goroutine " + std::to_string(i);
  std::vector<int> v;
  for (int k = 0; k < 100; ++k) v.push_back(k * i);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%s: %zu values", s.c_str(), v.size());
  unsigned long parsed = std::strtoul(s.c_str() + 10, nullptr, 10);  // i again
  return static_cast<size_t>(n) + s.size() + (parsed == static_cast<unsigned long>(i) ? 0 : 1000000);
}
}  // namespace

TEST_CASE("stack: goroutines that called libc and libstdc++ and parked hold no segment; the pool lends it back") {
  if (!kSplitStacks) return;
  constexpr int kN = 20000;
  const int goroutines_before = gort::NumGoroutine();
  gort::GC();  // the pool frees what stayed idle a whole cycle: start from a quiet one
  gort::GC();
  StackView before = stack_view();
  uint64_t sys0 = gort_test::read_stats().StackSys;
  gort::Chan<int> release;
  gort::WaitGroup started, finished;
  started.Add(kN);
  finished.Add(kN);
  std::atomic<size_t> sum{0};
  for (int i = 0; i < kN; ++i) {
    gort::go([&, release, i]() mutable {
      sum.fetch_add(ordinary_work(i), std::memory_order_relaxed);
      started.Done();
      release.recv();  // parks on its first stack: its 1 MiB segment is a spare, given back
      sum.fetch_add(ordinary_work(i), std::memory_order_relaxed);  // grows again: lent one
      finished.Done();
    });
  }
  started.Wait();
  StackView during = stack_view();
  gort::MemStats m = gort_test::read_stats();
  gort_test::check_identities(m);
  uint64_t per_goroutine = (during.inuse - std::min(during.inuse, before.inuse)) / kN;
  MESSAGE(kN << " goroutines that called snprintf, parked: StackInuse +" << per_goroutine << " B each; idle segments "
             << gort::internal::segments_idle_bytes() / 1024 << " KiB (StackSys)");
  // Their first stacks (8 KiB each, in 1 MiB chunks) and at most the segments of the few that
  // are still switching out: nothing like 1 MiB each.
  CHECK(per_goroutine <= 16 * 1024);
  CHECK(m.StackSys >= m.StackInuse + gort::internal::segments_idle_bytes());
  // One goroutine's segment served the next: not a segment mapped per goroutine.
  CHECK(m.StackSys - std::min(m.StackSys, sys0) <= static_cast<uint64_t>(kN) * 16 * 1024 + (64u << 20));
  // Growing again takes segments from the pool, not from the OS: the idle bytes shrink, the
  // total mapped for stacks does not grow by a segment per goroutine.
  uint64_t sys_before = m.StackSys;
  release.close();
  finished.Wait();
  gort::MemStats after = gort_test::read_stats();
  CHECK(after.StackSys <= sys_before + (64u << 20));
  CHECK(sum.load() > 0);
  // Two collections later the pool gave its idle segments back to the OS.
  gort::GC();
  gort::GC();
  gort::GC();
  CHECK(gort::internal::segments_idle_bytes() <= static_cast<uint64_t>(gort::GOMAXPROCS(0)) * gort::internal::kCacheSegments * (2u << 20));
  // Gone before the next test counts goroutines.
  CHECK(gort_test::eventually([&] { return gort::NumGoroutine() <= goroutines_before; }));
}

TEST_CASE("stack: a goroutine that calls libc between its waits is lent a segment at each run, from the pool") {
  if (!kSplitStacks) return;
  constexpr int kRounds = 2000;
  // Segments other goroutines hold (the finalizer goroutine may wait on one).
  const uint64_t others = gort::internal::stack_segment_bytes();
  gort::Chan<int> ping, pong;
  gort::WaitGroup done;
  done.Add(1);
  std::atomic<size_t> sum{0};
  std::atomic<int> unlent{0};  // rounds after the first that started with no spare segment
  gort::go([&, ping, pong]() mutable {
    for (int i = 0; i < kRounds; ++i) {
      void *spares, *current;
      gort::internal::stack_current_segments(&spares, &current);
      if (i > 0 && (!spares || current)) unlent.fetch_add(1, std::memory_order_relaxed);
      sum.fetch_add(ordinary_work(i), std::memory_order_relaxed);  // on a 1 MiB segment, then back
      pong.send(i);
      ping.recv();  // parks on its first stack: the segment goes back to the pool
    }
    done.Done();
  });
  REQUIRE(pong.recv() == 0);
  for (int i = 1; i < kRounds; ++i) {
    ping.send(0);
    REQUIRE(pong.recv() == i);
    if (i % 500 == 0) {
      gort::MemStats m = gort_test::read_stats();
      gort_test::check_identities(m);
      // Between its rounds it holds its 8 KiB; its segment is idle (StackSys only), or lent and
      // not noted yet if the goroutine already runs its next round.
      CHECK(m.StackSys >= m.StackInuse + gort::internal::segments_idle_bytes());
      CHECK(gort::internal::stack_segment_bytes() < others + (1u << 20));
    }
  }
  ping.send(0);
  done.Wait();
  // Each round after the first woke with a segment lent to it, ready for the 1 MiB growth: libgcc
  // mapped none of its own.
  CHECK(unlent.load() == 0);
  CHECK(sum.load() > 0);
}
