// parked: COUNT goroutines blocked receiving on one channel, on gort's scheduler; the growth of
// MemStats.StackInuse, and of the process's resident memory, from before the first spawn to when
// all of them have started, divided by COUNT. Then the channel is closed and every goroutine
// finishes. Same work as bench/go/parked.go.
// Usage: bench-parked [COUNT [MODE]]   (COUNT = 100000 by default)
//   MODE plain (default): each goroutine only parks.
//   MODE call: each first calls a function that does what C++ code does (a std::string, a
//     std::vector grown to 100 elements, snprintf: libstdc++ and libc), then parks.
//   MODE inline: the same work written in the goroutine's own body, which then parks there.
// stdout: the result (identical across the gort and Go versions)
// stderr: parked_stack_bytes_per_g rss_bytes_per_g (key=value)
#include <gort/gort.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

long rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * sysconf(_SC_PAGESIZE);
}

// What a goroutine of a C++ program does before it waits: build a string, fill a vector, format.
__attribute__((noinline)) size_t ordinary_work(long i) {
  std::string s = "goroutine " + std::to_string(i);
  std::vector<long> v;
  for (long k = 0; k < 100; ++k) v.push_back(k * i);
  char buf[64];
  return static_cast<size_t>(std::snprintf(buf, sizeof buf, "%s: %zu values", s.c_str(), v.size()));
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 100000L;
  const char* mode = argc > 2 ? argv[2] : "plain";
  bool call = std::strcmp(mode, "call") == 0, inl = std::strcmp(mode, "inline") == 0;
  if (n <= 0 || (!call && !inl && std::strcmp(mode, "plain") != 0)) {
    std::fprintf(stderr, "usage: bench-parked [COUNT [plain|call|inline]]\n");
    return 2;
  }
  return gort::run([&] {
    gort::Chan<int> ch;
    gort::WaitGroup started, finished;
    started.Add(n);
    finished.Add(n);
    std::atomic<size_t> chars{0};
    gort::MemStats before, after;
    gort::ReadMemStats(&before);
    long rss0 = rss_bytes();
    for (long i = 0; i < n; i++) {
      if (inl) {
        gort::go([ch, &started, &finished, &chars, i]() mutable {
          std::string s = "goroutine " + std::to_string(i);
          std::vector<long> v;
          for (long k = 0; k < 100; ++k) v.push_back(k * i);
          char buf[64];
          chars.fetch_add(static_cast<size_t>(std::snprintf(buf, sizeof buf, "%s: %zu values", s.c_str(), v.size())),
                          std::memory_order_relaxed);
          started.Done();
          ch.recv();
          finished.Done();
        });
      } else {
        gort::go([ch, &started, &finished, &chars, call, i]() mutable {
          if (call) chars.fetch_add(ordinary_work(i), std::memory_order_relaxed);
          started.Done();
          ch.recv();
          finished.Done();
        });
      }
    }
    started.Wait();
    gort::ReadMemStats(&after);
    long rss1 = rss_bytes();
    ch.close();
    finished.Wait();

    std::printf("%ld goroutines parked on one channel and released\n", n);
    std::fflush(stdout);
    std::fprintf(stderr, "parked_stack_bytes_per_g=%.0f rss_bytes_per_g=%.0f\n",
                 static_cast<double>(static_cast<int64_t>(after.StackInuse) - static_cast<int64_t>(before.StackInuse)) /
                     static_cast<double>(n),
                 static_cast<double>(rss1 - rss0) / static_cast<double>(n));
    return 0;
  });
}
