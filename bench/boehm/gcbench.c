/* gcbench: the Ellis/Kovac/Boehm GCBench on Boehm GC.
   stdout: the result (identical across the gort, Go and Boehm versions)
   stderr: wall_ms (key=value)
   Build: gcc -O2 gcbench.c -lgc */
#include "common.h"

#include <stdio.h>
#include <string.h>

enum {
  kStretchTreeDepth = 18,   /* about 16Mb */
  kLongLivedTreeDepth = 16, /* about 4Mb */
  kArraySize = 500000,      /* about 4Mb */
  kMinTreeDepth = 4,
  kMaxTreeDepth = 16,
};

typedef struct Node {
  struct Node *left, *right;
  int i, j;
} Node;

static Node *new_node(void) { return (Node *)GC_MALLOC(sizeof(Node)); /* zeroed */ }

/* Nodes in a complete binary tree of the given depth. */
static int tree_size(int i) { return (1 << (i + 1)) - 1; }

/* Number of trees of the given depth to build. */
static int num_iters(int i) { return 2 * tree_size(kStretchTreeDepth) / tree_size(i); }

/* Builds a tree top-down. */
static void populate(int depth, Node *n) {
  if (depth <= 0) return;
  depth--;
  n->left = new_node();
  n->right = new_node();
  populate(depth, n->left);
  populate(depth, n->right);
}

/* Builds a tree bottom-up. */
static Node *make_tree(int depth) {
  if (depth <= 0) return new_node();
  Node *l = make_tree(depth - 1);
  Node *r = make_tree(depth - 1);
  Node *n = new_node();
  n->left = l;
  n->right = r;
  return n;
}

static int count_nodes(const Node *n) {
  if (n == NULL) return 0;
  return 1 + count_nodes(n->left) + count_nodes(n->right);
}

/* Keeps the temporary trees from being optimised away (the stores are observable). */
static Node *volatile sink;

static void time_construction(int depth) {
  int iters = num_iters(depth);
  printf("Creating %d trees of depth %d\n", iters, depth);
  for (int i = 0; i < iters; i++) {
    Node *t = new_node();
    populate(depth, t);
    sink = t;
    sink = NULL;
  }
  printf("\tTop down construction done\n");
  for (int i = 0; i < iters; i++) {
    sink = make_tree(depth);
    sink = NULL;
  }
  printf("\tBottom up construction done\n");
}

int main(void) {
  GC_INIT(); /* no pause accounting: gcbench reports wall time only */
  uint64_t start = now_ns();

  printf("Garbage Collector Test\n");
  printf(" Stretching memory with a binary tree of depth %d\n", kStretchTreeDepth);
  sink = make_tree(kStretchTreeDepth);
  sink = NULL;

  printf(" Creating a long-lived binary tree of depth %d\n", kLongLivedTreeDepth);
  Node *long_lived = new_node();
  populate(kLongLivedTreeDepth, long_lived);

  printf(" Creating a long-lived array of %d doubles\n", kArraySize);
  double *array = (double *)GC_MALLOC_ATOMIC(sizeof(double) * kArraySize);
  memset(array, 0, sizeof(double) * kArraySize); /* GC_MALLOC_ATOMIC does not zero */
  for (int i = 0; i < kArraySize / 2; i++) array[i] = 1.0 / i;

  for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) time_construction(d);

  int nodes = count_nodes(long_lived);
  int ok = array[1000] == 1.0 / 1000.0 && array[kArraySize / 2] == 0 &&
           nodes == tree_size(kLongLivedTreeDepth);
  uint64_t wall = now_ns() - start;
  printf("long-lived tree nodes: %d\n", nodes);
  printf("check: %s\n", ok ? "ok" : "FAILED");
  fflush(stdout);
  fprintf(stderr, "wall_ms=%.1f\n", wall / 1e6);
  return ok ? 0 : 1;
}
