// A live terminal view of the runtime, the way `top` shows a process: the heap's sawtooth (live
// heap against the collector's goal), the last pauses, cycles, GC CPU and goroutines, redrawn
// each second, beside a workload whose live set grows and shrinks.
//
//   monitor [SECONDS]    runs SECONDS seconds (default: until interrupted)
//
// Everything shown comes from ReadMemStats, debug::ReadGCStats and NumGoroutine, sampled ten
// times a second (docs/memstats.md says what each figure means).
#include <gort/gort.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>

namespace {

using namespace std::chrono_literals;

struct Node {
  gort::Ref<Node> next;
  char payload[48];
  void trace(gort::Tracer& t) const { t.visit(next); }
};

// One goroutine keeps a list whose length swings between 0 and `peak` nodes; three others make
// short-lived garbage. The collector's cycles make the heap a sawtooth.
void workload(gort::WaitGroup& wg, std::atomic<bool>& stop) {
  wg.Add(4);
  gort::go([&] {
    gort::Root<Node> list;
    for (int round = 0; !stop.load(); ++round) {
      int peak = 20000 + (round % 8) * 20000;
      for (int i = 0; i < peak && !stop.load(); ++i) {
        Node* n = gort::make<Node>();
        n->next = list.get();
        list = n;
        if (i % 1000 == 0) gort::sleep_for(1ms);
      }
      list = nullptr;
    }
    wg.Done();
  });
  for (int w = 0; w < 3; ++w) {
    gort::go([&] {
      while (!stop.load()) {
        for (int i = 0; i < 2000; ++i) gort::KeepAlive(gort::make<Node>());
        gort::sleep_for(2ms);
      }
      wg.Done();
    });
  }
}

std::string mib(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%7.1f MiB", b / 1048576.0);
  return s;
}

// The last samples of HeapAlloc as rows of a chart, the heap goal as a line of '-'.
void draw_chart(const std::deque<std::pair<uint64_t, uint64_t>>& samples) {
  constexpr int kRows = 10;
  uint64_t top = 1;
  for (auto [alloc, goal] : samples) top = std::max({top, alloc, goal});
  for (int row = kRows; row >= 1; --row) {
    uint64_t level = top * static_cast<uint64_t>(row) / kRows;
    std::string line;
    for (auto [alloc, goal] : samples) {
      uint64_t goal_row = (goal * kRows + top - 1) / top;
      if (alloc >= level) line += '#';
      else if (static_cast<int>(goal_row) == row) line += '-';
      else line += ' ';
    }
    std::printf("%s |%s\n", mib(level).c_str(), line.c_str());
  }
  std::printf("%s +%s\n", mib(0).c_str(), std::string(samples.size(), '-').c_str());
}

}  // namespace

int main(int argc, char** argv) {
  long seconds = argc > 1 ? std::atol(argv[1]) : 0;
  return gort::run([seconds] {
    std::atomic<bool> stop{false};
    gort::WaitGroup wg;
    workload(wg, stop);
    std::deque<std::pair<uint64_t, uint64_t>> samples;  // (HeapAlloc, NextGC), 10 per second
    auto start = std::chrono::steady_clock::now();
    for (int tick = 1;; ++tick) {
      gort::sleep_for(100ms);
      gort::MemStats ms;
      gort::ReadMemStats(&ms);
      samples.emplace_back(ms.HeapAlloc, ms.NextGC);
      if (samples.size() > 60) samples.pop_front();
      if (tick % 10) continue;
      gort::debug::GCStats gs;
      gs.PauseQuantiles.resize(5);
      gort::debug::ReadGCStats(&gs);
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("\033[H\033[2J");  // home, clear
      std::printf("gort monitor  %5.0f s   goroutines %d   GC cycles %u (%u forced)   GC CPU %.1f%%\n\n", elapsed,
                  gort::NumGoroutine(), ms.NumGC, ms.NumForcedGC, ms.GCCPUFraction * 100);
      std::printf("HeapAlloc %s   NextGC %s   HeapInuse %s   HeapSys %s   Sys %s\n", mib(ms.HeapAlloc).c_str(),
                  mib(ms.NextGC).c_str(), mib(ms.HeapInuse).c_str(), mib(ms.HeapSys).c_str(), mib(ms.Sys).c_str());
      std::printf("HeapObjects %llu   StackInuse %s   HeapReleased %s\n\n",
                  static_cast<unsigned long long>(ms.HeapObjects), mib(ms.StackInuse).c_str(),
                  mib(ms.HeapReleased).c_str());
      std::printf("live heap (#) and goal (-), last 6 s:\n");
      draw_chart(samples);
      std::printf("\npauses (stop-the-world per cycle), newest first:");
      for (size_t i = 0; i < gs.Pause.size() && i < 8; ++i)
        std::printf(" %.0f", std::chrono::duration<double, std::micro>(gs.Pause[i]).count());
      std::printf(" us\n");
      if (!gs.Pause.empty())
        std::printf("pause quantiles over the last %zu: min %.0f  25%% %.0f  50%% %.0f  75%% %.0f  max %.0f us\n",
                    gs.Pause.size(), std::chrono::duration<double, std::micro>(gs.PauseQuantiles[0]).count(),
                    std::chrono::duration<double, std::micro>(gs.PauseQuantiles[1]).count(),
                    std::chrono::duration<double, std::micro>(gs.PauseQuantiles[2]).count(),
                    std::chrono::duration<double, std::micro>(gs.PauseQuantiles[3]).count(),
                    std::chrono::duration<double, std::micro>(gs.PauseQuantiles[4]).count());
      std::fflush(stdout);
      if (seconds > 0 && elapsed >= static_cast<double>(seconds)) break;
    }
    stop.store(true);
    wg.Wait();
  });
}
