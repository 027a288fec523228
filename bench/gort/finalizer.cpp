// finalizer: 1,000,000 objects of 16 bytes, each given a trivial finalizer that counts, dropped;
// collections forced 1 ms apart until every finalizer ran. Prints finalizer_ns: total time per
// object (SetFinalizer + collection + the finalizer run). Same work as bench/go/finalizer.go.
#include <gort/gort.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {
struct Obj {
  int64_t a, b;
};
std::atomic<long> g_count{0};

__attribute__((noinline)) void make_all(long n) {
  for (long i = 0; i < n; ++i) {
    Obj* o = gort::make<Obj>();
    gort::SetFinalizer(o, [](Obj*) { g_count.fetch_add(1, std::memory_order_relaxed); });
  }
}
}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  gort::Runtime rt;
  auto start = std::chrono::steady_clock::now();
  make_all(n);
  while (g_count.load() < n) {
    gort::GC();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  std::printf("finalized %ld objects\n", n);
  std::fprintf(stderr, "finalizer_ns=%.1f\n", ns / static_cast<double>(n));
  return 0;
}
