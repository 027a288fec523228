// Mark assists (runtime/gc/assist.cpp): the background workers' surplus pays first; a surplus of
// the assist itself becomes bounded credit.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "runtime/gc/assist.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "test_util.hpp"

namespace gi = gort::internal;

namespace {
struct Cell {
  gort::Ref<Cell> left, right;
  void trace(gort::Tracer& t) const { t.visit(left); t.visit(right); }
};
Cell* tree(int depth) {
  Cell* c = gort::make<Cell>();
  if (depth > 0) {
    c->left = tree(depth - 1);
    c->right = tree(depth - 1);
  }
  return c;
}
}  // namespace

TEST_CASE("assist: what the background workers mark is credit for assists") {
  // Go's gcFlushBgCredit: without it every allocating thread pays its whole debt itself, however
  // much the workers did (gort once did: a third of the marking of a
  // single-threaded program was assists, next to an idle processor's worker).
  const char* godebug = std::getenv("GODEBUG");
  if (godebug && std::strstr(godebug, "gcstoptheworld=1")) return;  // no background workers then
  gort::Root<Cell> live(tree(16));  // 2^17 cells: work for every worker
  gort_test::clean_gc();            // the workers mark it; this thread only waits
  CHECK(gi::background_credit() > 0);
}

TEST_CASE("assist: an assist's surplus is credit, at most 1 MiB of allocation") {
  CHECK(gi::assist_debt_after(5000, 2.0) == 2500);    // still owed: 2500 bytes' worth
  CHECK(gi::assist_debt_after(-5000, 2.0) == -2500);  // done beyond the debt: credit
  CHECK(gi::assist_debt_after(-(64 << 10), 0.5) == -(128 << 10));
  // A chunk of 64 KiB at the ratio of a cycle's first moments (no scan work measured yet) would
  // be 32 MiB of credit: the thread would not assist again in the cycle.
  CHECK(gi::assist_debt_after(-(64 << 10), 0.002) == -gi::kMaxAssistCredit);
  CHECK(gi::assist_debt_after(-(64 << 10), 0) == 0);
}

TEST_CASE("assist: the scan work done is counted while the mark runs, so the assist ratio falls as it progresses") {
  // Go's assistWorkPerByte is the expected scan work still to do over the heap's runway left. The
  // work done must reach the pacer while the workers mark, not when they stop: counted only at
  // the end, every assist was charged as if the whole mark were still ahead (binary-trees spent a
  // third of its marking in assists, and ended its marks well short of the goal).
  const char* godebug = std::getenv("GODEBUG");
  if (godebug && std::strstr(godebug, "gcstoptheworld=1")) return;  // no concurrent mark
  gort::Root<Cell> live(tree(19));  // 2^20 cells: milliseconds of marking
  gort_test::clean_gc();
  std::atomic<bool> done{false};
  std::thread collector([&] {
    gort::AttachThread at;
    gort::GC();
    done = true;
  });
  // The distinct amounts of work seen while marking: counted as it is done, many; counted when
  // each worker stops, one or two (the whole tree at once).
  std::vector<uint64_t> seen;
  while (!done.load()) {
    if (!gi::gc_marking()) continue;
    uint64_t w = gi::cycle_scan_work();
    if (w && (seen.empty() || seen.back() != w)) seen.push_back(w);
  }
  collector.join();
  MESSAGE(seen.size() << " distinct amounts of scan work seen during the mark, up to "
                      << (seen.empty() ? 0 : seen.back()) << " bytes");
  CHECK(seen.size() >= 4);
}
