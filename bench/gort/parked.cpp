// parked: COUNT goroutines blocked receiving on one channel, on gort's scheduler; the growth of
// MemStats.StackInuse from before the first spawn to when all of them have started, divided by
// COUNT. Then the channel is closed and every goroutine finishes. Same work as bench/go/parked.go.
// Usage: bench-parked [COUNT]   (COUNT = 100000 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: parked_stack_bytes_per_g (key=value)
#include <gort/gort.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 100000L;
  if (n <= 0) {
    std::fprintf(stderr, "usage: bench-parked [COUNT]\n");
    return 2;
  }
  return gort::run([&] {
    gort::Chan<int> ch;
    gort::WaitGroup started, finished;
    started.Add(n);
    finished.Add(n);
    gort::MemStats before, after;
    gort::ReadMemStats(&before);
    for (long i = 0; i < n; i++) {
      gort::go([ch, &started, &finished]() mutable {
        started.Done();
        ch.recv();
        finished.Done();
      });
    }
    started.Wait();
    gort::ReadMemStats(&after);
    ch.close();
    finished.Wait();

    std::printf("%ld goroutines parked on one channel and released\n", n);
    std::fflush(stdout);
    std::fprintf(stderr, "parked_stack_bytes_per_g=%.0f\n",
                 static_cast<double>(static_cast<int64_t>(after.StackInuse) - static_cast<int64_t>(before.StackInuse)) /
                     static_cast<double>(n));
    return 0;
  });
}
