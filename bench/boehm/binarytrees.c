/* binarytrees: the Benchmarks Game binary-trees workload, sequential, on Boehm GC.
   Usage: binarytrees [N]   (N = 21 by default)
   stdout: the result (identical across the gort, Go and Boehm versions)
   stderr: wall_ms numgc pause_total_us pause_max_us sys_mb (key=value)
   Build: gcc -O2 binarytrees.c -lgc */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct Node {
  struct Node *left, *right;
} Node;

static Node *bottom_up_tree(int depth) {
  Node *n;
  if (depth <= 0) return (Node *)GC_MALLOC(sizeof(Node)); /* zeroed */
  Node *l = bottom_up_tree(depth - 1);
  Node *r = bottom_up_tree(depth - 1);
  n = (Node *)GC_MALLOC(sizeof(Node));
  n->left = l;
  n->right = r;
  return n;
}

static long check(const Node *n) {
  if (n->left == NULL) return 1;
  return 1 + check(n->left) + check(n->right);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 21;
  bench_gc_init();
  uint64_t start = now_ns();

  const int min_depth = 4;
  int max_depth = n < min_depth + 2 ? min_depth + 2 : n;
  int stretch = max_depth + 1;
  printf("stretch tree of depth %d\t check: %ld\n", stretch, check(bottom_up_tree(stretch)));

  Node *long_lived = bottom_up_tree(max_depth);
  for (int d = min_depth; d <= max_depth; d += 2) {
    long iters = 1L << (max_depth - d + min_depth);
    long sum = 0;
    for (long i = 0; i < iters; i++) sum += check(bottom_up_tree(d));
    printf("%ld\t trees of depth %d\t check: %ld\n", iters, d, sum);
  }
  printf("long lived tree of depth %d\t check: %ld\n", max_depth, check(long_lived));
  uint64_t wall = now_ns() - start;
  fflush(stdout);

  fprintf(stderr, "wall_ms=%.1f numgc=%lu pause_total_us=%.1f pause_max_us=%.1f sys_mb=%.1f\n",
          wall / 1e6, (unsigned long)GC_get_gc_no(), gc_pause_total_ns / 1e3, gc_pause_max_ns / 1e3,
          GC_get_obtained_from_os_bytes() / 1048576.0);
  return 0;
}
