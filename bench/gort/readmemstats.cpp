// readmemstats: the latency of gort::ReadMemStats with a large heap and many goroutines. A live
// linked list of OBJECTS 16-byte nodes (a managed pointer and an int64) is built, GOROUTINES
// goroutines are parked receiving on one channel, a collection is forced (so none is in progress
// during the measurement), then CALLS ReadMemStats calls are timed one by one. With BUSY > 0,
// BUSY goroutines allocate 16-byte nodes in chains cut every 1000 meanwhile, and the calls are
// 20 us apart, so collections run during them (gcs_during counts the cycles that ended). Afterwards the goroutines are released and the list is checked.
// Same work as bench/go/readmemstats.go.
// Usage: bench-readmemstats [OBJECTS [GOROUTINES [CALLS [BUSY]]]]   (8000000 100000 200 0 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: readmemstats_p50_us p99_us gcs_during (key=value): the median and 99th percentile call time
// (nearest rank below: sorted[(CALLS-1)*q/100])
#include <gort/gort.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Node {
  gort::Ref<Node> next;
  int64_t v = 0;
  void trace(gort::Tracer& t) const { t.visit(next); }
};
static_assert(sizeof(Node) == 16, "readmemstats keeps 16-byte objects live");

}  // namespace

int main(int argc, char** argv) {
  long args[4] = {8000000, 100000, 200, 0};
  for (int i = 1; i < argc; i++) {
    char* end = nullptr;
    long v = std::strtol(argv[i], &end, 10);
    if (*end != '\0' || v < 0 || (v == 0 && i <= 3) || i > 4) {
      std::fprintf(stderr, "usage: bench-readmemstats [OBJECTS [GOROUTINES [CALLS [BUSY]]]]\n");
      return 2;
    }
    args[i - 1] = v;
  }
  const long objects = args[0], goroutines = args[1], calls = args[2], busy = args[3];

  return gort::run([&] {
    // The list's head is kept in a Root: the main goroutine's stack would do too (it is
    // scanned conservatively), the Root just makes it explicit.
    gort::Root<Node> head;
    for (long i = 0; i < objects; i++) {
      Node* n = gort::make<Node>();
      n->next = head.get();
      n->v = i;
      head = n;
    }

    gort::Chan<int> ch;
    gort::WaitGroup started, finished;
    started.Add(goroutines);
    finished.Add(goroutines);
    for (long i = 0; i < goroutines; i++) {
      gort::go([ch, &started, &finished]() mutable {
        started.Done();
        ch.recv();
        finished.Done();
      });
    }
    started.Wait();
    gort::GC();  // no collection left running during the timed calls

    std::atomic<bool> stop{false};
    gort::WaitGroup allocating, allocated;
    allocating.Add(busy);
    allocated.Add(busy);
    for (long i = 0; i < busy; i++) {
      gort::go([&] {
        Node* chain = nullptr;
        allocating.Done();
        for (int64_t k = 0; !stop.load(std::memory_order_relaxed); k++) {
          Node* n = gort::make<Node>();
          n->next = chain;
          n->v = k;
          chain = k % 1000 == 0 ? nullptr : n;
        }
        gort::KeepAlive(chain);
        allocated.Done();
      });
    }
    allocating.Wait();

    gort::MemStats ms;
    gort::ReadMemStats(&ms);
    const uint32_t gcs_before = ms.NumGC;
    std::vector<double> times(static_cast<size_t>(calls));
    for (double& t : times) {
      auto t0 = std::chrono::steady_clock::now();
      gort::ReadMemStats(&ms);
      auto t1 = std::chrono::steady_clock::now();
      t = std::chrono::duration<double, std::micro>(t1 - t0).count();
      if (busy)
        while (std::chrono::steady_clock::now() - t1 < std::chrono::microseconds(20)) {
        }
    }
    const uint32_t gcs_during = ms.NumGC - gcs_before;
    stop = true;
    allocated.Wait();
    ch.close();
    finished.Wait();

    int64_t count = 0, sum = 0;
    for (const Node* p = head.get(); p != nullptr; p = p->next.get()) {
      count++;
      sum += p->v;
    }
    std::sort(times.begin(), times.end());
    std::printf("%ld ReadMemStats calls with %ld goroutines parked, %ld allocating and a live list of %lld nodes (sum %lld)\n",
                calls, goroutines, busy, static_cast<long long>(count), static_cast<long long>(sum));
    std::fflush(stdout);
    std::fprintf(stderr, "readmemstats_p50_us=%.1f p99_us=%.1f gcs_during=%u\n",
                 times[static_cast<size_t>((calls - 1) * 50 / 100)], times[static_cast<size_t>((calls - 1) * 99 / 100)],
                 gcs_during);
    return 0;
  });
}
