// The pacer (Go 1.19's mgcpacer.go): when a cycle starts, how much CPU it uses, how hard
// allocating threads assist.
//
// Heap goal, in bytes of heap objects (heap_live):
//   GOGC:        marked + (marked + stacks + globals) * GOGC/100, at least 4 MiB * GOGC/100
//                (never, with GOGC=off);
//   GOMEMLIMIT:  limit - (non-heap memory) - (overage past the limit) - 1 MiB headroom, never below
//                the marked heap (Go's memoryLimitHeapGoal: non-heap is what counts against the
//                limit, Sys - HeapReleased, less free heap pages and heap objects). Beyond Go: a
//                goal past the heap mapped so far also pays for the metadata the heap's growth
//                brings (each new span's mark bytes and span structure: 9% of a heap of 16-byte
//                objects, where Go's bitmaps are about 3%; measured once the heap has 16 MiB,
//                the worst class's 16% before), so the limit holds on the way up and not only
//                once the metadata exists. A goal the limit set is not stretched when the mark
//                overruns (Go 1.19 stretches it without bound under GOGC=off);
// the lower one wins. Without the limit in charge the goal keeps at least 1 MiB of sweep
// distance past the live heap and 64 KiB past the trigger.
//
// Trigger: goal - runway, where runway = cons/mark * (1 - u)/u * (expected scan work), u = 25%:
// the bytes the program allocates while the collector does the expected scan work at its 25% of
// the CPU. cons/mark (allocation rate over scan rate, per CPU-second) is measured at the end of
// each cycle and smoothed by Go's PI controller. The trigger stays between 0.7 and 0.95 of the
// way from the marked heap to the goal (for small heaps; goal - 4 MiB for large ones).
//
// During a cycle: dedicated workers = round(GOMAXPROCS/4), or one fewer plus a fractional worker
// when rounding is more than 30% off; the assist ratio (scan work still expected / heap still
// allowed) is revised as marking progresses (assist.hpp). If the mark overruns, the goal is
// stretched up to (1 + GOGC/100) x goal, with 10% slack when the heap is already past it.
#pragma once
#include <cstdint>

namespace gort::internal {

struct PacerInputs {
  uint64_t marked = 0;   // live heap found by the last mark
  uint64_t stacks = 0;   // stack bytes scanned by the last mark
  uint64_t globals = 0;  // root bytes scanned by the last mark
};

constexpr uint64_t kNoGoal = ~uint64_t{0};
constexpr int64_t kNoMemoryLimit = INT64_MAX;

// What growing the heap costs besides its pages: `mapped` is the heap's address space mapped so
// far (HeapSys: the heap grows only when no free page is left), `meta_per_byte` the runtime
// memory each further heap byte brings (side tables and span structures).
struct HeapGrowth {
  uint64_t mapped = kNoGoal;
  double meta_per_byte = 0;
};

// The goal for a heap with the given last-cycle figures and settings. `non_heap` is the memory
// that counts against the limit and cannot hold heap objects (Go's term 1), `overage` how far
// the total is past the limit (term 2).
uint64_t heap_goal(const PacerInputs& in, int gc_percent, int64_t memory_limit, uint64_t non_heap,
                   uint64_t overage = 0, HeapGrowth growth = {});

int gc_percent();
int set_gc_percent(int percent);  // returns the previous value; recomputes goal and trigger
int64_t memory_limit();
int64_t set_memory_limit(int64_t limit);  // negative: only reads
uint64_t current_goal();
const PacerInputs& last_cycle();
double cons_mark();  // the smoothed cons/mark ratio the trigger's runway is computed from
// Recomputes goal and trigger (the world stopped, or the world lock held).
void pacer_update();

// One concurrent cycle, as the collector runs it (mgc.cpp).
struct CycleWorkers {
  int dedicated = 0;
  double fractional = 0;  // per processor
};
CycleWorkers pacer_start_cycle(uint64_t now_ns, int procs);
// Recomputes the assist ratio from the work done so far (cheap: called by assists).
void pacer_revise();
double assist_work_per_byte();
void add_assist_time(uint64_t ns);
uint64_t cycle_assist_ns();
// The end of a mark: what it found, and the CPU the collector used meanwhile.
struct CycleResult {
  uint64_t marked = 0;      // heap bytes marked, allocate-black included
  uint64_t heap_live = 0;   // the heap when the mark ended, before it is reset to `marked`
  uint64_t heap_scan = 0;   // scan work of heap objects
  uint64_t stacks = 0;
  uint64_t globals = 0;
  uint64_t mark_ns = 0;     // wall time of the concurrent mark
  uint64_t bg_ns = 0;       // dedicated + fractional workers' CPU
  uint64_t idle_ns = 0;     // idle workers' CPU
};
void pacer_end_cycle(const CycleResult& r, int procs);
// The stop-the-world collector's end of cycle (GODEBUG=gcstoptheworld=1).
void pacer_end_cycle(const PacerInputs& in);
// Go's piController, for cons/mark (exposed for its test).
struct PiController {
  double kp, ti, tt, min, max;
  double integral = 0;
  double next(double input, double setpoint, double period, bool* ok);
};

}  // namespace gort::internal
