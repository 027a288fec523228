// Goroutine stacks (runtime/sched/stack.hpp) in the build's mode: segmented (the default) or
// fixed. Deep recursion, what StackInuse counts, the collector walking segments, a million
// parked goroutines, exceptions across segments, stack reuse.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

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
  gort::sleep_for(std::chrono::milliseconds(5));  // let it reach its park
  gort::MemStats during = gort_test::read_stats();
  gort_test::check_identities(during);
  // Its segments hold the ~10 MB of frames and are counted (the stack may have come from a pool
  // with segments grown earlier: StackInuse need not grow, but it covers them).
  uint64_t segments = gort::internal::stack_segment_bytes();
  CHECK(segments >= static_cast<uint64_t>(kDepth) * 200);
  CHECK(during.StackInuse >= segments + kStackSize);
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

TEST_CASE("memstats: N parked goroutines move StackInuse by the stacks they hold; StackSys includes it") {
  constexpr int kN = 4096;
  using gort::internal::stack_segment_bytes;
  gort::MemStats before = gort_test::read_stats();
  uint64_t segments_before = stack_segment_bytes();
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
  gort::MemStats during = gort_test::read_stats();
  uint64_t segments_during = stack_segment_bytes();
  gort_test::check_identities(during);
  CHECK(during.StackSys >= during.StackInuse);
  CHECK(segments_during == segments_before);
  // Each parked goroutine holds its first stack and nothing more (no segment: the runtime's
  // path to parking calls nothing that would grow it). Stacks pooled before may serve some; new
  // ones come in chunks (split: 1 MiB) or one by one (fixed).
  uint64_t grown = during.StackInuse - before.StackInuse;
  CHECK(during.StackInuse >= before.StackInuse);
  CHECK(grown <= static_cast<uint64_t>(kN) * kStackSize + (1 << 20));
  if (!kSplitStacks) CHECK(during.StackInuse % kStackSize == 0);
  release.close();
  finished.Wait();
  // Finished first stacks go to the pools, still counted; the global pool gives back the
  // segments of the stacks it takes (goroutines of earlier tests grew some).
  gort::MemStats after = gort_test::read_stats();
  CHECK(after.StackInuse - stack_segment_bytes() == during.StackInuse - segments_during);
  after.StackInuse -= stack_segment_bytes();
  // Spawning as many again reuses the pools: no new stack memory.
  gort::WaitGroup again;
  again.Add(kN);
  gort::Chan<int> release2;
  for (int i = 0; i < kN; ++i) gort::go([&, release2]() mutable { release2.recv(); again.Done(); });
  gort::sleep_for(std::chrono::milliseconds(20));
  CHECK(gort_test::read_stats().StackInuse - stack_segment_bytes() == after.StackInuse);
  release2.close();
  again.Wait();
}

TEST_CASE("stack: a million goroutines parked at once (split stacks)") {
  if (!kSplitStacks) return;  // fixed stacks: two mappings each, the kernel's limit is ~65,000
  constexpr int kN = 1000000;
  uint64_t before = stack_inuse();
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
  uint64_t during = stack_inuse();
  MESSAGE("1,000,000 parked goroutines: StackInuse grew by " << (during - before) / kN << " bytes each");
  CHECK(during - before <= static_cast<uint64_t>(kN) * kStackSize + (1 << 20));
  release.close();
  finished.Wait();
}
