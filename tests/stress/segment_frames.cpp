// Stress: goroutines whose functions run on __morestack segments and hold managed pointers only
// in those frames, stopped by collections from other threads (issue #8).
//
// Each goroutine calls into libc (snprintf) from a function with a small frame, so that function
// runs at the very top of a fresh 1 MiB segment (libgcc's __morestack_non_split), and keeps the
// only references to its objects in that frame's memory and in its registers while it yields,
// parks on a timer and spins without calls (stopped there by the suspend signal). Goroutines
// start one at a time: whenever one takes the first stack at the bottom of a new chunk of first
// stacks, the segment it maps next lies right below it, so its frames sit a few bytes under its
// own first stack, the layout a walk must not mistake for that first stack. An attached thread
// collects in a loop, main allocates garbage that reuses any slot freed by mistake, and every
// goroutine checks its objects after every pause. Exit status 1 if any object was lost.
//
// usage: stress-segment-frames [goroutines=400] [collections=2000]  (GOMAXPROCS: at least 2)
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

struct Obj {
  uint64_t tag;
  uint64_t pad[5];
};

std::atomic<int> lost{0}, started{0}, collections{0};
std::atomic<bool> stop{false};

bool intact(Obj* o, uint64_t tag) { return o->tag == tag; }

// Small frame, one call into libc: runs at the top of a 1 MiB segment. `p` lives in the frame's
// memory (volatile), `q` wherever the compiler keeps it (a callee-saved register, spilled by the
// functions it calls).
__attribute__((noinline)) void hold(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%d", i);
  Obj* volatile p = gort::make<Obj>();
  Obj* q = gort::make<Obj>();
  const uint64_t tag = 0x5e900000ULL + static_cast<uint64_t>(i);
  p->tag = tag;
  q->tag = ~tag;
  started.fetch_add(1);
  for (uint32_t round = 0; !stop.load(std::memory_order_relaxed); ++round) {
    switch (round % 3) {
      case 0: gort::Gosched(); break;                       // switched out, runnable
      case 1: gort::sleep_for(std::chrono::microseconds(50)); break;  // parked on a timer
      default:                                              // running: stopped by the signal
        for (int k = 0; k < 2000 && !stop.load(std::memory_order_relaxed); ++k) asm volatile("" ::: "memory");
    }
    if (!intact(p, tag) || !intact(q, ~tag)) {
      lost.fetch_add(1);
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 400;
  const int want = argc > 2 ? std::atoi(argv[2]) : 2000;
  gort::Options opts;
  opts.gomaxprocs = std::max(2u, std::thread::hardware_concurrency());
  gort::Runtime rt(opts);
  gort::WaitGroup done;
  done.Add(n);
  for (int i = 0; i < n; ++i) {
    gort::go([&done](int i) { hold(i); done.Done(); }, i);
    while (started.load() <= i) gort::Gosched();  // one at a time: stacks and segments in order
  }
  std::thread collector([] {
    gort::AttachThread attach;
    while (!stop.load()) {
      gort::GC();
      collections.fetch_add(1);
    }
  });
  while (collections.load() < want && lost.load() == 0) {
    for (int k = 0; k < 2000; ++k) gort::make<Obj>()->tag = 1;  // reuses what a collection freed
    gort::sleep_for(std::chrono::microseconds(200));
  }
  stop = true;
  collector.join();
  done.Wait();
  gort::MemStats ms;
  gort::ReadMemStats(&ms);
  std::printf("segment-frames: %d goroutines, %u collections, %d objects lost\n", n, ms.NumGC, lost.load());
  return lost.load() == 0 ? 0 : 1;
}
