/* alloc: allocation throughput of a 16-byte object holding two pointers on Boehm GC.
   Each object is linked to the previous one; the chain is cut every 64 objects, so
   almost everything becomes short-lived garbage.
   Usage: alloc [COUNT]   (COUNT = 50000000 by default)
   stdout: the result (identical across the gort, Go and Boehm versions)
   stderr: alloc16_ns (key=value): wall time per allocation
   Build: gcc -O2 alloc.c -lgc */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct Obj {
  struct Obj *a, *b;
} Obj;

/* Keeps the most recent complete chain reachable (Boehm scans the data segment),
   as Go's package-level variable does. */
static Obj *volatile head;

static void run(long n) {
  Obj *prev = NULL;
  for (long i = 0; i < n; i++) {
    Obj *o = (Obj *)GC_MALLOC(sizeof(Obj)); /* zeroed */
    o->a = prev;
    prev = o;
    if ((i & 63) == 63) {
      head = prev;
      prev = NULL;
    }
  }
  if (prev != NULL) head = prev;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 50000000L;
  if (n <= 0) {
    fprintf(stderr, "usage: alloc [COUNT]\n");
    return 2;
  }
  bench_gc_init();
  uint64_t start = now_ns();
  run(n);
  uint64_t wall = now_ns() - start;

  long length = 0;
  for (Obj *p = head; p != NULL; p = p->a) length++;
  printf("allocated %ld objects of 16 bytes, last chain length %ld\n", n, length);
  fflush(stdout);
  fprintf(stderr, "alloc16_ns=%.2f\n", (double)wall / (double)n);
  return 0;
}
