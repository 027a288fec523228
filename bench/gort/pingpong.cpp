// pingpong: two goroutines pass an int back and forth over two unbuffered channels on gort's
// scheduler. main sends v on ping, the other goroutine receives it and sends v+1 back on pong,
// main receives it: one round trip. After COUNT round trips v == COUNT.
// Same work as bench/go/pingpong.go.
// Usage: bench-pingpong [COUNT]   (COUNT = 2000000 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: ns_per_roundtrip (key=value): wall time / COUNT
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 2000000L;
  if (n <= 0) {
    std::fprintf(stderr, "usage: bench-pingpong [COUNT]\n");
    return 2;
  }
  return gort::run([&] {
    gort::Chan<long> ping, pong;
    gort::Chan<int> done;  // closed when the other goroutine has finished
    gort::go([=]() mutable {
      while (std::optional<long> v = ping.recv()) pong.send(*v + 1);
      done.close();
    });

    auto start = std::chrono::steady_clock::now();
    long v = 0;
    for (long i = 0; i < n; i++) {
      ping.send(v);
      v = *pong.recv();
    }
    auto wall = std::chrono::steady_clock::now() - start;
    ping.close();
    done.recv();

    std::printf("%ld round trips, final value %ld\n", n, v);
    std::fflush(stdout);
    std::fprintf(stderr, "ns_per_roundtrip=%.1f\n",
                 std::chrono::duration<double, std::nano>(wall).count() / static_cast<double>(n));
    return 0;
  });
}
