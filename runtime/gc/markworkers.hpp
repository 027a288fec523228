// The collector's worker threads (Go's gcBgMarkWorker and the helpers of a stop-the-world mark).
//
// gort starts GOMAXPROCS worker threads (service threads: not attached, never stopped). They
// mark in two ways:
//   - stop-the-world phases (mark_phase, drain_stopped): all of them drain the queue together
//     with the collector, until every participant is idle;
//   - a concurrent mark (bg_mark_start .. bg_mark_stop): Go's division of the 25% of GOMAXPROCS
//     the collector may use, computed by the pacer: `dedicated` workers mark all the time, one
//     more marks `fractional` of its time (a share of each processor's time, times GOMAXPROCS),
//     and the others mark only while processors are idle (Go's idle workers). Each claims root
//     jobs (mgcmark.hpp: stacks, roots, specials) first, then drains grey objects in chunks.
// Their CPU time is accounted per kind, for gctrace and GCCPUFraction.
#pragma once
#include <cstdint>

#include "runtime/gc/mgcwork.hpp"

namespace gort::internal {

void start_gc_workers(int n);
void stop_gc_workers();

// Stop-the-world marking on every core: scan_roots(worker) on the calling thread, then drains
// with every worker thread.
struct MarkResult {
  uint64_t marked_bytes = 0;
  uint64_t marked_objects = 0;
  uint64_t scan_work = 0;
  uint64_t cpu_ns = 0;         // all participants' marking
  uint64_t worker_cpu_ns = 0;  // the worker threads' share
};
MarkResult mark_phase(void (*scan_roots)(MarkWorker&));
// Drains what is queued (self holds some of it) with every worker thread, the world stopped. With
// nothing queued (the usual end of a concurrent mark) it returns at once: waking the workers
// would cost more than the pause is allowed to last.
MarkResult drain_stopped(MarkWorker& self);

// A concurrent mark's background workers.
void bg_mark_start(int dedicated, double fractional_goal, int procs);
void bg_mark_stop();
struct BgMarkStats {
  uint64_t dedicated_ns = 0, fractional_ns = 0, idle_ns = 0;  // CPU time
};
BgMarkStats bg_mark_stats();

}  // namespace gort::internal
