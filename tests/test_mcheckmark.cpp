// GODEBUG=gccheckmark=1's bookkeeping (runtime/gc/mcheckmark.cpp): what the concurrent mark read
// at each scanned address, and the stale pointers a later byte store reveals.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <cstdint>
#include <mutex>
#include <thread>

#include "runtime/core/sanitizer.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mcheckmark.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/sched/proc.hpp"
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

namespace {
constexpr uintptr_t kSlowPathWord = 0x51075109a7e51075ull;
uintptr_t g_slow_frame_lo = 0, g_slow_frame_hi = 0;

// What a slow path leaves below its caller (an assist's marking, a barrier flush): a frame full of
// the words it handled.
__attribute__((noinline)) void slow_path_frame() {
  volatile uintptr_t frame[256];
  for (auto& w : frame) w = kSlowPathWord;
  g_slow_frame_lo = reinterpret_cast<uintptr_t>(&frame[0]);
  g_slow_frame_hi = g_slow_frame_lo + sizeof frame;
}

// How many of that frame's words are still there: it reads dead stack, which ASan may have
// poisoned for a frame that has returned.
__attribute__((noinline)) GORT_NO_SANITIZE_SCAN size_t slow_path_words_left() {
  size_t n = 0;
  for (uintptr_t a = g_slow_frame_lo; a < g_slow_frame_hi; a += sizeof(uintptr_t))
    n += *reinterpret_cast<const volatile uintptr_t*>(a) == kSlowPathWord;
  return n;
}
}  // namespace

// on_system_stack runs the runtime's slow paths (marking in assists and barrier flushes, span
// refills) on the stack of a thread that is not running a goroutine, that thread's own. Their
// dead frames then lie below frames the program calls later; if the thread's stack was scanned
// before, the checking mark must not find in those later frames' unwritten slots what the slow
// path handled (stop 25's CI: an assist's conservative scan of a 24-byte object left the
// object's end, the address of the next, dead, object, in a register its callee saved; a later
// park's frame showed it).
TEST_CASE("mcheckmark: a slow path run on a thread's own stack leaves none of its dead frames behind") {
  // Checkmark's scrubbing, without its checking mark. No cycle may begin meanwhile: one that
  // began with the flag on would keep checkmark's table of scanned words for good.
  int gogc = gort::debug::SetGCPercent(-1);
  const bool scrubbing = gi::checkmark_scrubs_stacks();
  gi::set_checkmark(true);
  size_t left = 0;
  std::thread([&] {
    gort::AttachThread attach;
    gi::on_system_stack([] { slow_path_frame(); });
    left = slow_path_words_left();
  }).join();
  gi::set_checkmark(scrubbing);
  gort::debug::SetGCPercent(gogc);
  CHECK(g_slow_frame_hi > g_slow_frame_lo);
  CHECK(left == 0);
}
