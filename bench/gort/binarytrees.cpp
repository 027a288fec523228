// binarytrees: the Benchmarks Game binary-trees workload, sequential, on gort.
// Usage: bench-binarytrees [N]   (N = 21 by default)
// stdout: the result (identical across the gort, Go and Boehm versions)
// stderr: wall_ms numgc pause_total_us pause_max_us sys_mb gccpu rss_mb (key=value)
#include <gort/gort.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace {

struct Node {
  gort::Ref<Node> left, right;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};

// Children first, then the parent, as in the Go and Boehm versions. The partial
// results l and r live on the stack or in registers, which are scanned conservatively.
Node* bottom_up_tree(int depth) {
  if (depth <= 0) return gort::make<Node>();
  Node* l = bottom_up_tree(depth - 1);
  Node* r = bottom_up_tree(depth - 1);
  Node* n = gort::make<Node>();
  n->left = l;
  n->right = r;
  return n;
}

long check(const Node* n) {
  if (!n->left) return 1;
  return 1 + check(n->left.get()) + check(n->right.get());
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 21;
  gort::Runtime rt;
  auto start = std::chrono::steady_clock::now();

  const int min_depth = 4;
  int max_depth = n < min_depth + 2 ? min_depth + 2 : n;
  int stretch = max_depth + 1;
  std::printf("stretch tree of depth %d\t check: %ld\n", stretch, check(bottom_up_tree(stretch)));

  Node* long_lived = bottom_up_tree(max_depth);
  for (int d = min_depth; d <= max_depth; d += 2) {
    long iters = 1L << (max_depth - d + min_depth);
    long sum = 0;
    for (long i = 0; i < iters; i++) sum += check(bottom_up_tree(d));
    std::printf("%ld\t trees of depth %d\t check: %ld\n", iters, d, sum);
  }
  std::printf("long lived tree of depth %d\t check: %ld\n", max_depth, check(long_lived));
  auto wall = std::chrono::steady_clock::now() - start;
  std::fflush(stdout);

  gort::MemStats ms;
  gort::ReadMemStats(&ms);
  uint64_t pause_max = 0;
  uint64_t k = ms.NumGC;
  if (k > std::size(ms.PauseNs)) k = std::size(ms.PauseNs);
  for (uint64_t i = 0; i < k; i++)
    if (ms.PauseNs[i] > pause_max) pause_max = ms.PauseNs[i];
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "wall_ms=%.1f numgc=%u pause_total_us=%.1f pause_max_us=%.1f sys_mb=%.1f gccpu=%.3f rss_mb=%.1f\n",
               std::chrono::duration<double, std::milli>(wall).count(), unsigned(ms.NumGC),
               double(ms.PauseTotalNs) / 1e3, double(pause_max) / 1e3,
               double(ms.Sys) / (1024.0 * 1024.0), ms.GCCPUFraction, ru.ru_maxrss / 1024.0);
  return 0;
}
