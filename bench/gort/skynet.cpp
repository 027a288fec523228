// skynet: 1,000,000 leaf goroutines in a 10-ary tree on gort's scheduler. Each leaf sends its
// ordinal; each inner goroutine starts its 10 children, sums what they send on its own channel
// (capacity 10) and sends the sum up. The root sends on an unbuffered channel to main.
// Same work as bench/go/skynet.go.
// Usage: bench-skynet [LEAVES [new]]   (LEAVES = 1000000 by default; a power of 10)
//   new: each inner goroutine makes its channel with new and deletes it once summed, as C++
//   users write it; operator new and delete are libstdc++'s (built without split-stack), so the
//   goroutine's body runs on a stack segment (runtime/sched/segments.hpp). Go has no such
//   difference: its program takes the argument and ignores it.
// stdout: the result (identical across the gort and Go versions)
// stderr: wall_ms stack_sys_mb (key=value); stack_sys_mb is MemStats.StackSys once the tree
// has finished, in MiB
#include <gort/gort.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int64_t kDiv = 10;
bool g_new = false;

void skynet(gort::Chan<int64_t> c, int64_t num, int64_t size) {
  if (size == 1) {
    c.send(num);
    return;
  }
  gort::Chan<int64_t> rc(kDiv);
  for (int64_t i = 0; i < kDiv; i++) gort::go(skynet, rc, num + i * (size / kDiv), size / kDiv);
  int64_t sum = 0;
  for (int64_t i = 0; i < kDiv; i++) sum += *rc.recv();
  c.send(sum);
}

void skynet_new(gort::Chan<int64_t> c, int64_t num, int64_t size) {
  if (size == 1) {
    c.send(num);
    return;
  }
  auto* rc = new gort::Chan<int64_t>(kDiv);
  for (int64_t i = 0; i < kDiv; i++) gort::go(skynet_new, *rc, num + i * (size / kDiv), size / kDiv);
  int64_t sum = 0;
  for (int64_t i = 0; i < kDiv; i++) sum += *rc->recv();
  delete rc;
  c.send(sum);
}

bool power_of_10(int64_t n) {
  if (n < 1) return false;
  while (n % kDiv == 0) n /= kDiv;
  return n == 1;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t leaves = 1000000;
  if (argc > 1) {
    char* end = nullptr;
    leaves = std::strtoll(argv[1], &end, 10);
    g_new = argc > 2 && std::strcmp(argv[2], "new") == 0;
    if (*end != '\0' || !power_of_10(leaves) || (argc > 2 && !g_new)) {
      std::fprintf(stderr, "usage: bench-skynet [LEAVES [new]]   (LEAVES a power of 10)\n");
      return 2;
    }
  }
  return gort::run([&] {
    auto start = std::chrono::steady_clock::now();
    gort::Chan<int64_t> c;
    gort::go(g_new ? skynet_new : skynet, c, int64_t{0}, leaves);
    int64_t result = *c.recv();
    auto wall = std::chrono::steady_clock::now() - start;

    gort::MemStats ms;
    gort::ReadMemStats(&ms);
    std::printf("Result: %lld\n", static_cast<long long>(result));
    std::fflush(stdout);
    std::fprintf(stderr, "wall_ms=%.1f stack_sys_mb=%.1f\n",
                 std::chrono::duration<double, std::milli>(wall).count(),
                 static_cast<double>(ms.StackSys) / (1 << 20));
    return 0;
  });
}
