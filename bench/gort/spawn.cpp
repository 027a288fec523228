// spawn: COUNT goroutines that each call WaitGroup.Done once, on gort's scheduler; the time from
// the first spawn to Wait returning. Same work as bench/go/spawn.go.
// Usage: bench-spawn [COUNT]   (COUNT = 1000000 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: spawn_ns (key=value): wall time / COUNT
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 1000000L;
  if (n <= 0) {
    std::fprintf(stderr, "usage: bench-spawn [COUNT]\n");
    return 2;
  }
  return gort::run([&] {
    gort::WaitGroup wg;
    wg.Add(n);
    auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++) gort::go([&wg] { wg.Done(); });
    wg.Wait();
    auto wall = std::chrono::steady_clock::now() - start;

    std::printf("%ld goroutines spawned and finished\n", n);
    std::fflush(stdout);
    std::fprintf(stderr, "spawn_ns=%.1f\n",
                 std::chrono::duration<double, std::nano>(wall).count() / static_cast<double>(n));
    return 0;
  });
}
