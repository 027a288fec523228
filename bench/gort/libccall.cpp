// libccall: what a call into code built without split-stack costs on a goroutine against the
// same call on a thread. COUNT calls of a small function that formats an integer with snprintf,
// from a loop that calls nothing else: first on a goroutine, then on a std::thread. gort stands in
// for snprintf (runtime/sched/cxxcall.cpp): on a goroutine it runs libc's on the M's own stack,
// on a thread it calls it directly. The same again with a function that parses the integer back
// with strtol, which gort leaves to libc: gold gives that function the 1 MiB prologue, so each
// call from the goroutine goes through libgcc's __morestack onto a stack segment and back
// (runtime/sched/segments.hpp); on a thread (8 MiB) it does not.
// Same work as bench/go/libccall.go (Go's strconv on a goroutine, then on a locked OS thread).
// Usage: bench-libccall [COUNT]   (COUNT = 5000000 by default)
// stdout: the sum of the formatted lengths, twice (identical across the gort and Go versions)
// stderr: call_ratio goroutine_ns thread_ns segment_ratio segment_goroutine_ns segment_thread_ns
// (key=value): ns per call, and goroutine/thread, for snprintf and for strtol
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

__attribute__((noinline)) int format_one(char* buf, long i) { return std::snprintf(buf, 32, "%ld", i); }

__attribute__((noinline)) int parse_one(const char* text) { return static_cast<int>(std::strtol(text, nullptr, 10)); }

// Call nothing built without split-stack themselves, so they stay on the goroutine's first stack.
__attribute__((noinline)) long call_loop(long n) {
  char buf[32];
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += format_one(buf, i);
  return sum;
}
__attribute__((noinline)) long parse_loop(long n) {
  static const char* const texts[4] = {"7", "42", "1234", "987654"};
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += parse_one(texts[i & 3]);
  return sum;
}

__attribute__((noinline)) long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

__attribute__((noinline)) double ns_per_call(long (*loop)(long), long n, long* sum) {
  long t0 = now_ns();
  *sum = loop(n);
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
    long on_goroutine = 0, on_thread = 0, parsed_g = 0, parsed_t = 0;
    double g_ns = 0, t_ns = 0, pg_ns = 0, pt_ns = 0;
    gort::WaitGroup done;
    done.Add(1);
    gort::go([&] {
      g_ns = ns_per_call(call_loop, n, &on_goroutine);
      pg_ns = ns_per_call(parse_loop, n, &parsed_g);
      done.Done();
    });
    done.Wait();
    std::thread t([&] {
      t_ns = ns_per_call(call_loop, n, &on_thread);
      pt_ns = ns_per_call(parse_loop, n, &parsed_t);
    });
    t.join();
    if (parsed_g != parsed_t) {
      std::fprintf(stderr, "strtol disagreed: %ld on the goroutine, %ld on the thread\n", parsed_g, parsed_t);
      return 1;
    }
    std::printf("%ld %ld\n", on_goroutine, on_thread);
    std::fflush(stdout);
    std::fprintf(stderr,
                 "call_ratio=%.3f goroutine_ns=%.1f thread_ns=%.1f segment_ratio=%.3f segment_goroutine_ns=%.1f "
                 "segment_thread_ns=%.1f\n",
                 g_ns / t_ns, g_ns, t_ns, pg_ns / pt_ns, pg_ns, pt_ns);
    return 0;
  });
}
