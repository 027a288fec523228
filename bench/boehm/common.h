/* Shared helpers for the Boehm GC peers: a monotonic clock and collection timing. */
#ifndef BENCH_BOEHM_COMMON_H
#define BENCH_BOEHM_COMMON_H

/* Include this first: clock_gettime(CLOCK_MONOTONIC) is POSIX, not ISO C. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <gc.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Boehm collects stop-the-world in the allocating thread: a collection from
   GC_EVENT_START to GC_EVENT_END is one pause. */
static uint64_t gc_pause_start_ns, gc_pause_total_ns, gc_pause_max_ns;

static void on_gc_event(GC_EventType ev) {
  if (ev == GC_EVENT_START) {
    gc_pause_start_ns = now_ns();
  } else if (ev == GC_EVENT_END && gc_pause_start_ns != 0) {
    uint64_t d = now_ns() - gc_pause_start_ns;
    gc_pause_total_ns += d;
    if (d > gc_pause_max_ns) gc_pause_max_ns = d;
    gc_pause_start_ns = 0;
  }
}

static inline void bench_gc_init(void) {
  GC_INIT();
  GC_set_on_collection_event(on_gc_event);
}

#endif
