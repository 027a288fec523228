// runtime/core/os.hpp's primitives. EventCount: a notify() either wakes a sleeper or keeps it
// from sleeping, whatever the interleaving (the mark workers, assists and the collector wait on
// two of them). on_alternate_signal_stack: the kernel's answer, right where an address test fails.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime/core/os.hpp"
#include "runtime/core/splitstack.hpp"

namespace gi = gort::internal;

namespace {
// Waits until `flag` reaches `want` the way the runtime's waiters do: key first, then the
// condition, then sleep, with a timeout far above any wake-up latency. Returns the longest sleep.
std::chrono::nanoseconds wait_for(gi::EventCount& ec, std::atomic<int>& flag, int want) {
  std::chrono::nanoseconds longest{0};
  for (;;) {
    uint32_t key = ec.prepare();
    if (flag.load(std::memory_order_seq_cst) >= want) return longest;
    auto t0 = std::chrono::steady_clock::now();
    ec.wait(key, 2'000'000'000);
    longest = std::max(longest, std::chrono::steady_clock::now() - t0);
  }
}
}  // namespace

TEST_CASE("EventCount: no lost wake-up between two threads handing a counter back and forth") {
  gi::EventCount to_a, to_b;
  std::atomic<int> a_turn{0}, b_turn{0};
  constexpr int kRounds = 20000;
  std::chrono::nanoseconds worst_b{0};
  std::thread b([&] {
    for (int i = 1; i <= kRounds; ++i) {
      worst_b = std::max(worst_b, wait_for(to_b, b_turn, i));
      a_turn.store(i, std::memory_order_seq_cst);
      to_a.notify();
    }
  });
  std::chrono::nanoseconds worst_a{0};
  for (int i = 1; i <= kRounds; ++i) {
    b_turn.store(i, std::memory_order_seq_cst);
    to_b.notify();
    worst_a = std::max(worst_a, wait_for(to_a, a_turn, i));
  }
  b.join();
  // A lost wake-up shows as a sleep that lasted its whole 2 s timeout.
  CHECK(worst_a < std::chrono::seconds(1));
  CHECK(worst_b < std::chrono::seconds(1));
  CHECK(to_a.sleepers.load() == 0);
  CHECK(to_b.sleepers.load() == 0);
}

TEST_CASE("EventCount: a notify with nobody asleep still changes the key, so a later wait returns at once") {
  gi::EventCount ec;
  uint32_t key = ec.prepare();
  ec.notify();
  CHECK(ec.prepare() != key);
  auto t0 = std::chrono::steady_clock::now();
  ec.wait(key, 2'000'000'000);  // the number moved: the futex does not sleep
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
}

namespace {
std::atomic<int> g_on_alt{-1};
uintptr_t g_handler_sp = 0;
ucontext_t g_main_ctx, g_low_ctx;

// No split-stack prologue in either: they run on stacks libgcc does not know.
GORT_NO_SPLIT void record_stack(int, siginfo_t*, void*);
GORT_NO_SPLIT void raise_on_this_stack();

void record_stack(int, siginfo_t*, void*) {
  g_on_alt.store(gi::on_alternate_signal_stack() ? 1 : 0);
  g_handler_sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
}
void raise_on_this_stack() { raise(SIGUSR2); }
}  // namespace

TEST_CASE("on_alternate_signal_stack: true on an alternate stack mapped right below the interrupted one, false off it") {
  // One mapping: an interrupted stack on top, the alternate signal stack directly below it. A
  // handler's frame then lies a few KiB below the interrupted stack pointer, which an address
  // test takes for "the same stack, below sp" (park() did, and zeroed past the alternate stack).
  constexpr size_t kHalf = 64 << 10;
  auto* base = static_cast<char*>(mmap(nullptr, 2 * kHalf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(base != MAP_FAILED);
  struct sigaction sa {}, old {};
  sa.sa_sigaction = record_stack;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGUSR2, &sa, &old) == 0);

  // Without an alternate stack (a new thread has none): the handler runs on the thread's stack.
  std::thread([] { raise(SIGUSR2); }).join();
  CHECK(g_on_alt.load() == 0);

  std::thread t([&] {  // a thread of its own, so that the test runner's signal setup is left alone
    stack_t alt{}, prev{};
    alt.ss_sp = base;
    alt.ss_size = kHalf;
    REQUIRE(sigaltstack(&alt, &prev) == 0);
    getcontext(&g_low_ctx);
    g_low_ctx.uc_stack.ss_sp = base + kHalf;
    g_low_ctx.uc_stack.ss_size = kHalf;
    g_low_ctx.uc_link = &g_main_ctx;
    makecontext(&g_low_ctx, raise_on_this_stack, 0);
    g_on_alt = -1;
    swapcontext(&g_main_ctx, &g_low_ctx);
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
  });
  t.join();
  CHECK(g_on_alt.load() == 1);
  // The geometry that fooled the address test: the handler's frame within 64 KiB below the
  // interrupted stack's range.
  CHECK(g_handler_sp >= reinterpret_cast<uintptr_t>(base));
  CHECK(g_handler_sp < reinterpret_cast<uintptr_t>(base) + kHalf);
  sigaction(SIGUSR2, &old, nullptr);
  munmap(base, 2 * kHalf);
}
