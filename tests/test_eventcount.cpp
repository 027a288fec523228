// runtime/core/os.hpp's EventCount: a notify() either wakes a sleeper or keeps it from sleeping,
// whatever the interleaving (the mark workers, assists and the collector wait on two of them).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime/core/os.hpp"

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
