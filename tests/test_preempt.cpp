// Preemption (runtime/sched/preempt.hpp): a goroutine that loops without calls gives up its
// processor after ~10 ms, continues with every register as it was, keeps what its registers
// point at alive through collections, and is never interrupted inside the runtime or libc.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sched/preempt.hpp"
#include "runtime/sched/proc.hpp"
#include "test_util.hpp"

// ThreadSanitizer builds have no asynchronous preemption (sched/proc.cpp): TSan runs signal
// handlers late, on a copy of the context the signal interrupted.
constexpr bool kNoAsyncPreemption = gort::internal::kThreadSanitizer;

namespace {

using Clock = std::chrono::steady_clock;

using gort_test::RestoreProcs;

// A loop without calls that keeps many integer and floating-point values in registers at once:
// a register a preemption lost or swapped changes the result.
__attribute__((noinline)) uint64_t register_heavy(uint64_t iters, uint64_t seed) {
  uint64_t a = seed, b = seed * 3 + 1, c = seed ^ 0x9e3779b97f4a7c15u, d = 7, e = 11, f = 13, g = 17, h = 19;
  double x = 1.0 + static_cast<double>(seed % 7), y = 0.5, z = 0.25, w = 2.0;
  for (uint64_t i = 0; i < iters; ++i) {
    a += b ^ (c >> 3);
    b = b * 6364136223846793005u + d;
    c ^= a << 7;
    d += e * (i | 1);
    e = (e << 1) ^ f;
    f += g ^ h;
    g = g * 31 + a;
    h ^= d >> 5;
    x = x * 1.0000001 + y;
    y = y * 0.9999999 + z;
    z = z + w * 1e-9;
    w = w * 0.99999999 + 1e-9;
    if (x > 1e12) x -= 1e12;
  }
  double fp = x + y * 3 + z * 5 + w * 7;
  uint64_t fpbits;
  std::memcpy(&fpbits, &fp, sizeof fpbits);
  return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ fpbits;
}

// Spins on a flag without calling anything.
__attribute__((noinline)) uint64_t spin_until(const std::atomic<bool>& stop) {
  uint64_t n = 0;
  while (!stop.load(std::memory_order_relaxed)) ++n;
  return n;
}

__attribute__((noinline)) int program_function(int x) { return x * 3 + 1; }

}  // namespace

TEST_CASE("preempt: with GOMAXPROCS=1, a goroutine looping without calls does not keep the others from running" * doctest::skip(kNoAsyncPreemption)) {
  // Go's case: one goroutine spins, another sleeps 10 ms; without preemption the sleeper never
  // runs again. Here it resumes once sysmon preempts the spinner: 10-20 ms after the spin begins.
  // The first verdict reads the program's symbol tables (libbacktrace; a few hundred ms once per
  // process): done here, so that the trials time preemption itself.
  CHECK(gort::internal::preemptible_code(reinterpret_cast<uintptr_t>(&spin_until) + 1));
  RestoreProcs procs(1);
  std::vector<double> waits_ms;
  for (int trial = 0; trial < 5; ++trial) {
    std::atomic<bool> stop{false};
    gort::WaitGroup spinner_done, sleeper_done;
    spinner_done.Add(1);
    sleeper_done.Add(1);
    auto t0 = Clock::now();
    gort::go([&] {
      gort::go([&] { spin_until(stop); spinner_done.Done(); });
      gort::sleep_for(std::chrono::milliseconds(10));
      sleeper_done.Done();
    });
    sleeper_done.Wait();  // hangs without preemption
    double waited = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    stop = true;
    spinner_done.Wait();
    waits_ms.push_back(waited);
  }
  std::sort(waits_ms.begin(), waits_ms.end());
  INFO("sleeps of 10 ms took (ms): " << waits_ms[0] << " " << waits_ms[1] << " " << waits_ms[2] << " " << waits_ms[3]
                                     << " " << waits_ms[4]);
  CHECK(waits_ms[2] < 50.0);  // the bound, on the median
  CHECK(waits_ms[4] < 1000.0);
}

TEST_CASE("preempt: a preempted goroutine continues with every register as it was" * doctest::skip(kNoAsyncPreemption)) {
  constexpr uint64_t kIters = 60000000;  // ~100 ms each: several preemptions
  std::vector<uint64_t> want(4);
  for (uint64_t i = 0; i < want.size(); ++i) want[i] = register_heavy(kIters, i + 1);  // this thread: never preempted
  RestoreProcs procs(1);
  uint64_t before = gort::internal::async_preemptions();
  std::vector<uint64_t> got(want.size());
  gort::WaitGroup wg;
  wg.Add(static_cast<int>(got.size()));
  for (uint64_t i = 0; i < got.size(); ++i) {
    gort::go([&, i] {
      got[i] = register_heavy(kIters, i + 1);
      wg.Done();
    });
  }
  wg.Wait();
  uint64_t preempted = gort::internal::async_preemptions() - before;
  INFO("preemptions: " << preempted);
  CHECK(preempted >= 4);  // four goroutines sharing one processor for ~400 ms
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == want[i]);
}

TEST_CASE("preempt: the program's code is preemptible; the runtime, libc and libgcc's stack switching are not") {
  using gort::internal::preemptible_code;
  CHECK(preemptible_code(reinterpret_cast<uintptr_t>(&program_function) + 1));
  CHECK(preemptible_code(reinterpret_cast<uintptr_t>(&register_heavy) + 4));
  // libc, libstdc++ (system libraries)
  CHECK_FALSE(preemptible_code(reinterpret_cast<uintptr_t>(&std::memmove) + 1));
  CHECK_FALSE(preemptible_code(reinterpret_cast<uintptr_t>(static_cast<void* (*)(size_t)>(&::operator new)) + 1));
  // gort's runtime, linked into this program
  CHECK_FALSE(preemptible_code(reinterpret_cast<uintptr_t>(&gort::internal::yield) + 1));
  CHECK_FALSE(preemptible_code(reinterpret_cast<uintptr_t>(&gort::internal::async_preemptions) + 1));
  // A goroutine's body, wrapped by go()'s header code (GoClosure<F>::call): the program's.
  std::atomic<uintptr_t> body_pc{0};
  gort::WaitGroup wg;
  wg.Add(1);
  gort::go([&] {
    uintptr_t pc;
    asm volatile("leaq 0(%%rip), %0" : "=r"(pc));
    body_pc = pc;
    wg.Done();
  });
  wg.Wait();
  CHECK(preemptible_code(body_pc.load()));
}

namespace {
__attribute__((noinline)) void spin_preempted_a(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) asm volatile("" ::: "memory");
}
__attribute__((noinline)) void spin_preempted_b(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) asm volatile("" ::: "memory");
}
// The goroutine blocks of a dump ("goroutine N [state]:" and its frames) whose header has `state`
// and whose frames name `fn`.
int blocks_with(const std::string& dump, const std::string& state, const std::string& fn) {
  int n = 0;
  for (size_t at = dump.find("goroutine "); at != std::string::npos;) {
    size_t next = dump.find("\ngoroutine ", at + 1);
    std::string block = dump.substr(at, next == std::string::npos ? std::string::npos : next - at);
    std::string header = block.substr(0, block.find('\n'));
    if (header.find("[" + state + "]") != std::string::npos && block.find(fn) != std::string::npos) ++n;
    at = next == std::string::npos ? next : next + 1;
  }
  return n;
}
}  // namespace

TEST_CASE("preempt: a dump shows a preempted goroutine at the instruction where it was interrupted" * doctest::skip(kNoAsyncPreemption)) {
  // Two spinners share one processor: at any time one runs and the other waits, preempted. The
  // waiting one's stack is unwound through the injected call's frame into its loop.
  RestoreProcs procs(1);
  std::atomic<bool> stop{false};
  gort::WaitGroup done;
  done.Add(2);
  uint64_t before = gort::internal::async_preemptions();
  gort::go([&] { spin_preempted_a(stop); done.Done(); });
  gort::go([&] { spin_preempted_b(stop); done.Done(); });
  std::string dump;
  bool seen = false;
  for (int tries = 0; tries < 500 && !seen; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (gort::internal::async_preemptions() - before < 2) continue;
    dump = gort::internal::goroutine_dump();
    seen = blocks_with(dump, "runnable", "spin_preempted_") > 0;
  }
  stop = true;
  done.Wait();
  INFO(dump);
  CHECK(seen);
  CHECK(blocks_with(dump, "runnable", "DOCTEST_ANON_FUNC") > 0);  // and on, into the goroutine's function
}

#if GORT_SPLIT_STACK
extern "C" void __morestack();
TEST_CASE("preempt: never inside __morestack" * doctest::skip(kNoAsyncPreemption)) {
  CHECK_FALSE(gort::internal::preemptible_code(reinterpret_cast<uintptr_t>(&__morestack) + 1));
}
#endif

namespace {
// Holds a tree only in registers and this frame while it loops without calls.
__attribute__((noinline)) bool hold_while_spinning(int64_t v, uint64_t iters) {
  gort_test::TreeNode* t = gort_test::build_tree(5, v);
  uint64_t mix = 0;
  for (uint64_t i = 0; i < iters; ++i) mix += (mix >> 3) ^ i;
  asm volatile("" : : "r"(mix));
  return gort_test::check_tree(t, 5, v);
}
}  // namespace

TEST_CASE("preempt stress: goroutines preempted while they hold trees, collections forced meanwhile" * doctest::skip(kNoAsyncPreemption)) {
  // Goroutines loop without calls while a tree is held only in their registers and frames; each
  // preemption parks them with those registers in the copied signal frame, which collections
  // (forced in a loop, with their stack scans) must see. They go on until enough preemptions
  // happened: a cycle's assists can keep them in the runtime (not preemptible) for a while.
  RestoreProcs procs(2);
  constexpr int kGoroutines = 6;
  constexpr uint64_t kMinPreemptions = 20;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  std::atomic<int> failures{0}, running{kGoroutines};
  const uint64_t before = gort::internal::async_preemptions();
  auto preempted = [before] { return gort::internal::async_preemptions() - before; };
  for (int i = 0; i < kGoroutines; ++i) {
    gort::go([&, i] {
      for (int round = 0; round < 12 || (preempted() < kMinPreemptions && Clock::now() < deadline); ++round)
        if (!hold_while_spinning(i * 1000 + round, 8000000)) failures.fetch_add(1);
      running.fetch_sub(1);
    });
  }
  int collections = 0;
  while (running.load() > 0) {
    gort::GC();
    ++collections;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  INFO("collections: " << collections << ", preemptions: " << preempted());
  CHECK(failures.load() == 0);
  CHECK(collections > 0);
  CHECK(preempted() >= kMinPreemptions);
}
