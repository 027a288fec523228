// GODEBUG=gccheckmark=1's bookkeeping (runtime/gc/mcheckmark.cpp): what the concurrent mark read
// at each scanned address, and the stale pointers a later byte store reveals.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <cstdint>
#include <mutex>

#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mcheckmark.hpp"
#include "test_util.hpp"

namespace gi = gort::internal;

TEST_CASE("mcheckmark: a pointer whose top bytes were cleared after the concurrent mark read the word is stale") {
  auto* obj = gort::make<int64_t>();
  const auto p = reinterpret_cast<uintptr_t>(obj);
  const uintptr_t q = p + 64;
  // Words "on a stack", as the concurrent mark saw them.
  uintptr_t words[4] = {p | (uintptr_t{1} << 48), p, q, 0};
  std::unique_lock<std::mutex> lk;
  for (;;) {
    gort_test::clean_gc();
    lk = std::unique_lock(gi::world_lock());
    if (!gi::gc_marking()) break;
    lk.unlock();
  }
  gi::checkmark_begin_cycle();
  gi::checkmark_observe_scan(reinterpret_cast<uintptr_t>(words), reinterpret_cast<uintptr_t>(words + 4));
  gi::g_observe_scans = false;  // the runtime's own scans are not remembered from here on
  words[0] = p;  // a byte store cleared the `bool` kept in the slot's top byte
  words[2] = p;  // a whole store: a live pointer
  words[3] = p;
  uintptr_t unscanned = p;
  CHECK(gi::checkmark_revealed(reinterpret_cast<uintptr_t>(&words[0]), p));
  CHECK_FALSE(gi::checkmark_revealed(reinterpret_cast<uintptr_t>(&words[1]), p));  // read whole, unchanged
  CHECK_FALSE(gi::checkmark_revealed(reinterpret_cast<uintptr_t>(&words[2]), p));  // another pointer before
  CHECK_FALSE(gi::checkmark_revealed(reinterpret_cast<uintptr_t>(&words[3]), p));  // zero before
  CHECK_FALSE(gi::checkmark_revealed(reinterpret_cast<uintptr_t>(&unscanned), p));  // never scanned
  gort::KeepAlive(obj);
}
