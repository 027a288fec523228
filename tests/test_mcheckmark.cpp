// GODEBUG=gccheckmark=1's bookkeeping (runtime/gc/mcheckmark.cpp): what the concurrent mark read
// at each scanned address, and the stale pointers a later byte store reveals.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <cstdint>
#include <mutex>
#include <thread>

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

namespace {
constexpr uintptr_t kOldWord = 0x5eed5eed5eed5eedull;
constexpr size_t kDepth = 16 << 10;

// Fills kDepth bytes below this frame, as a thread's dead frames would be left full of its words.
__attribute__((noinline)) void leave_words_below() {
  volatile uintptr_t frame[kDepth / sizeof(uintptr_t)];
  for (auto& w : frame) w = kOldWord;
}

// How many words below this frame (kDepth bytes) still hold the old thread's.
__attribute__((noinline)) size_t old_words_below() {
  volatile uintptr_t frame[kDepth / sizeof(uintptr_t)];  // never written: what was there
  size_t n = 0;
  for (auto& w : frame) n += w == kOldWord;
  return n;
}
}  // namespace

TEST_CASE("mcheckmark: a thread that attaches on a stack the C library recycled keeps none of the old words below it") {
  // GODEBUG=gccheckmark=1's scrubbing, without its checking mark: collections stay as they are.
  const bool scrubbing = gi::scrub_when_stopped();
  gi::set_scrub_when_stopped(true);
  size_t found = 0;
  int tries = 0;
  // glibc reuses a joined thread's stack for the next thread of the same size (its stack cache);
  // when it happens, the second thread starts on the first one's words.
  do {
    std::thread([] { leave_words_below(); }).join();
    std::thread([&] {
      gort::AttachThread attach;
      found = old_words_below();
    }).join();
  } while (found == 0 && ++tries < 3);
  gi::set_scrub_when_stopped(scrubbing);
  CHECK(found == 0);
}
