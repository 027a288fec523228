// GODEBUG=gctrace=1: one line per cycle on stderr, in Go 1.19's format (docs/gctrace.md). Clock:
// sweep termination (stop-the-world) + concurrent mark + mark termination (stop-the-world); cpu:
// the same phases, with the stop-the-world ones counted on every processor and the mark split
// into assist/background/idle:
//   gc # @#s #%: #+#+# ms clock, #+#/#/#+# ms cpu, #->#-># MB, # MB goal, # MB stacks,
//   # MB globals, # P
// followed by " (forced)" for cycles forced by GC().
#pragma once
#include <cstdint>
#include <string>

namespace gort::internal {

struct GcTrace {
  uint32_t numgc = 0;
  uint64_t start_unix_ns = 0;
  uint64_t t_start = 0, t_mark = 0, t_mark_term = 0, t_end = 0;  // monotonic ns
  // CPU time of marking between the two stop-the-world phases: assists, background (dedicated
  // and fractional) workers, idle workers. A stop-the-world cycle (GODEBUG=gcstoptheworld=1)
  // reports its whole mark as background.
  uint64_t mark_assist_cpu_ns = 0, mark_bg_cpu_ns = 0, mark_idle_cpu_ns = 0;
  uint64_t heap0 = 0, heap1 = 0, heap2 = 0, goal = 0, stacks = 0, globals = 0;
  int procs = 1;
  bool forced = false;
  double gc_cpu_fraction = 0;
};

bool gctrace_enabled();
void set_gctrace(int level);
// The line for one cycle, given the monotonic time the runtime started.
std::string format_gctrace(const GcTrace& t, uint64_t runtime_start_ns);
void print_gctrace(const GcTrace& t);
// Go's fmtNSAsMS: whole milliseconds from 10 ms up, else two significant digits, at most three decimals.
std::string fmt_ns_as_ms(uint64_t ns);

// Fraction of the available CPU time (elapsed since start x procs) the collector used.
double gc_cpu_fraction(uint64_t now_monotonic_ns);
uint64_t runtime_start_ns();
void set_runtime_start_ns(uint64_t ns);

}  // namespace gort::internal
