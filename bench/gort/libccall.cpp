// libccall: what a call into code built without split-stack (here snprintf) costs on a goroutine
// against the same call on a thread. A goroutine's small first stack does not have the 1 MiB the
// gold linker makes such a caller ask for, so each call from a function that does not itself call
// libc goes through libgcc's __morestack onto a stack segment (runtime/sched/segments.hpp) and
// back; on a thread (8 MiB) it does not. COUNT calls of a small function that formats an integer
// with snprintf, from a loop that calls nothing else: first on a goroutine, then on a std::thread.
// Same work as bench/go/libccall.go (Go's strconv on a goroutine, then on a locked OS thread).
// Usage: bench-libccall [COUNT]   (COUNT = 5000000 by default)
// stdout: the sum of the formatted lengths, twice (identical across the gort and Go versions)
// stderr: call_ratio goroutine_ns thread_ns (key=value): ns per call, and goroutine/thread
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

__attribute__((noinline)) int format_one(char* buf, long i) { return std::snprintf(buf, 32, "%ld", i); }

// Calls nothing built without split-stack itself, so it stays on the goroutine's first stack and
// each format_one call moves to a segment and back.
__attribute__((noinline)) long call_loop(long n) {
  char buf[32];
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += format_one(buf, i);
  return sum;
}

__attribute__((noinline)) long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

__attribute__((noinline)) double ns_per_call(long n, long* sum) {
  long t0 = now_ns();
  *sum = call_loop(n);
  return static_cast<double>(now_ns() - t0) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 5000000L;
  if (n <= 0) {
    std::fprintf(stderr, "usage: bench-libccall [COUNT]\n");
    return 2;
  }
  return gort::run([&] {
    long on_goroutine = 0, on_thread = 0;
    double g_ns = 0, t_ns = 0;
    gort::WaitGroup done;
    done.Add(1);
    gort::go([&] {
      g_ns = ns_per_call(n, &on_goroutine);
      done.Done();
    });
    done.Wait();
    std::thread t([&] { t_ns = ns_per_call(n, &on_thread); });
    t.join();
    std::printf("%ld %ld\n", on_goroutine, on_thread);
    std::fflush(stdout);
    std::fprintf(stderr, "call_ratio=%.3f goroutine_ns=%.1f thread_ns=%.1f\n", g_ns / t_ns, g_ns, t_ns);
    return 0;
  });
}
