// Goroutines, channels and select with gort::run: a pipeline of goroutines, a fan-in with select,
// and the stack statistics a Go program would show.
//
//   goroutines [N]          N numbers through the pipeline (default 10000)
//   goroutines --overflow   a goroutine recurses without end: gort reports the stack overflow
#include <gort/gort.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {
// Recurses `limit` levels deep, 256+ bytes a level.
__attribute__((noinline)) long recurse(long depth, long limit) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  return depth >= limit ? frame[0] : recurse(depth + 1, limit) + frame[0];
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--overflow") {
    return gort::run([] {
      gort::WaitGroup wg;
      wg.Add(1);
      gort::go([&] { std::printf("%ld\n", recurse(0, 1L << 30)); wg.Done(); });
      wg.Wait();
    });
  }
  long n = argc > 1 ? atol(argv[1]) : 10000;
  return gort::run([n] {
    // generate -> square -> sum, each stage a goroutine, connected by channels.
    gort::Chan<long> numbers(64), squares(64);
    gort::go([numbers, n]() mutable {
      for (long i = 1; i <= n; ++i) numbers.send(i);
      numbers.close();
    });
    gort::go([numbers, squares]() mutable {
      while (auto v = numbers.recv()) squares.send(*v * *v);
      squares.close();
    });
    // Fan-in with select: squares, and a ticker-like channel fed by another goroutine.
    gort::Chan<int> ticks;
    gort::go([ticks]() mutable {
      for (int i = 0; i < 3; ++i) {
        gort::sleep_for(std::chrono::milliseconds(1));
        ticks.send(i);
      }
      ticks.close();
    });
    long sum = 0;
    int tick_count = 0;
    bool squares_open = true, ticks_open = true;
    while (squares_open || ticks_open) {
      std::optional<long> sq;
      std::optional<int> tk;
      gort::Chan<long> no_squares;  // a channel nobody sends on stands in for a closed case
      gort::Chan<int> no_ticks;
      int k = gort::select(gort::on_recv(squares_open ? squares : no_squares, sq),
                           gort::on_recv(ticks_open ? ticks : no_ticks, tk));
      if (k == 0) {
        if (sq) sum += *sq; else squares_open = false;
      } else {
        if (tk) ++tick_count; else ticks_open = false;
      }
    }
    long want = n * (n + 1) * (2 * n + 1) / 6;
    gort::MemStats ms;
    gort::ReadMemStats(&ms);
    std::printf("sum of squares 1..%ld = %ld (%s), %d ticks\n", n, sum, sum == want ? "ok" : "WRONG", tick_count);
    std::printf("NumGoroutine=%d GOMAXPROCS=%d StackInuse=%llu StackSys=%llu NumGC=%u\n", gort::NumGoroutine(),
                gort::GOMAXPROCS(0), static_cast<unsigned long long>(ms.StackInuse),
                static_cast<unsigned long long>(ms.StackSys), ms.NumGC);
    return sum == want && tick_count == 3 ? 0 : 1;
  });
}
