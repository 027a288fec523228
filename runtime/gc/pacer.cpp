#include "runtime/gc/pacer.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "runtime/alloc/mcentral.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/gc/sweep.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
constexpr uint64_t kHeapMinimum = 4 << 20;           // Go's defaultHeapMinimum
constexpr uint64_t kLimitHeadroom = 1 << 20;         // memoryLimitHeapGoalHeadroom
constexpr uint64_t kSweepMinHeapDistance = 1 << 20;  // sweepMinHeapDistance
constexpr uint64_t kMinRunway = 64 << 10;
constexpr uint64_t kMeasuredMetaHeap = 16 << 20;
constexpr double kGoalUtilization = 0.25;            // gcGoalUtilization = gcBackgroundUtilization
constexpr uint64_t kTriggerRatioDen = 64, kMinTriggerRatioNum = 45, kMaxTriggerRatioNum = 61;

// Written under the world lock; read without it too (gc_percent(), memory_limit(): the scavenger,
// ReadMemStats), hence relaxed atomics.
std::atomic<int> g_gc_percent{100};
std::atomic<int64_t> g_memory_limit{kNoMemoryLimit};
PacerInputs g_last;
uint64_t g_last_heap_scan = 0;
double g_cons_mark = 0;
PiController g_cons_mark_ctl{0.9, 4.0, 1000, -1000, 1000};
uint64_t g_gc_percent_goal = kHeapMinimum;
uint64_t g_sweep_dist_min_trigger = 0;
uint64_t g_runway = 0;
std::atomic<uint64_t> g_goal{kHeapMinimum};
uint64_t g_triggered = ~uint64_t{0};  // heap_live when the running cycle started; ~0 outside one

// The running cycle.
std::atomic<double> g_assist_work_per_byte{0};
std::atomic<uint64_t> g_assist_ns{0};
uint64_t g_cycle_goal = 0;
bool g_cycle_limited = false;  // the memory limit set the running cycle's goal

// Memory that counts against the limit and cannot hold heap objects, and how far the total is
// past the limit (Go's memoryLimitHeapGoal terms 1 and 2). Go's heapAlloc counts the objects the
// sweeper has not freed yet; gort's heap_live forgets the dead ones at mark termination, so the
// heap's spans in use stand in for it (their free slots count as heap, as fragmentation would).
void limit_terms(uint64_t* non_heap, uint64_t* overage, HeapGrowth* growth) {
  auto& st = stats();
  // Measured once the heap is big enough for the ratio to mean something; before that, the most
  // any span class brings (its mark bytes and span structure per page).
  growth->mapped = st.heap_sys.load();
  growth->meta_per_byte = growth->mapped >= kMeasuredMetaHeap
                              ? static_cast<double>(side_table_sys() + st.mspan_sys.load()) / static_cast<double>(growth->mapped)
                              : max_span_meta_per_byte();
  uint64_t released = st.heap_released.load(std::memory_order_relaxed);
  uint64_t mapped_ready = st.sys_total() - released;
  uint64_t heap_ready = st.heap_sys.load() - released;  // free unscavenged pages + spans in use
  *non_heap = mapped_ready > heap_ready ? mapped_ready - heap_ready : 0;
  int64_t memlimit = g_memory_limit.load(std::memory_order_relaxed);
  uint64_t limit = memlimit > 0 ? static_cast<uint64_t>(memlimit) : 0;
  *overage = mapped_ready > limit ? mapped_ready - limit : 0;
}

uint64_t gc_percent_goal(const PacerInputs& in, int pct) {
  if (pct < 0) return kNoGoal;
  uint64_t goal = in.marked + (in.marked + in.stacks + in.globals) * static_cast<uint64_t>(pct) / 100;
  uint64_t minimum = kHeapMinimum * static_cast<uint64_t>(pct) / 100;
  return goal < minimum ? minimum : goal;
}

uint64_t memory_limit_goal(uint64_t marked, int64_t memory_limit, uint64_t non_heap, uint64_t overage,
                           HeapGrowth growth) {
  if (memory_limit == kNoMemoryLimit) return kNoGoal;
  uint64_t limit = memory_limit > 0 ? static_cast<uint64_t>(memory_limit) : 0;
  if (non_heap + overage >= limit) return marked;  // non-heap memory alone exceeds the limit
  uint64_t goal = limit - (non_heap + overage);
  if (goal < kLimitHeadroom || goal - kLimitHeadroom < kLimitHeadroom) goal = kLimitHeadroom;
  else goal -= kLimitHeadroom;
  // Past the mapped heap, each byte of growth brings meta_per_byte of metadata with it.
  if (goal > growth.mapped && growth.meta_per_byte > 0)
    goal = growth.mapped + static_cast<uint64_t>(static_cast<double>(goal - growth.mapped) / (1 + growth.meta_per_byte));
  return goal < marked ? marked : goal;
}

// Go's heapGoalInternal: the goal and the lowest trigger allowed.
uint64_t goal_internal(uint64_t* min_trigger) {
  uint64_t goal = g_gc_percent_goal;
  *min_trigger = 0;
  uint64_t non_heap, overage;
  HeapGrowth growth;
  limit_terms(&non_heap, &overage, &growth);
  uint64_t limited = memory_limit_goal(g_last.marked, g_memory_limit.load(std::memory_order_relaxed), non_heap, overage, growth);
  if (limited < goal) return limited;
  if (g_sweep_dist_min_trigger > goal) goal = g_sweep_dist_min_trigger;
  *min_trigger = g_sweep_dist_min_trigger;
  if (g_triggered != ~uint64_t{0} && goal < g_triggered + kMinRunway) goal = g_triggered + kMinRunway;
  return goal;
}

// Go's trigger(): from the runway, bounded to [0.7, 0.95] of the way from marked to goal.
uint64_t trigger_for(uint64_t goal, uint64_t min_trigger) {
  uint64_t marked = g_last.marked;
  if (goal == kNoGoal) return kNoGoal;
  if (marked >= goal) return goal;
  if (min_trigger < marked) min_trigger = marked;
  uint64_t lower = (goal - marked) / kTriggerRatioDen * kMinTriggerRatioNum + marked;
  if (min_trigger < lower) min_trigger = lower;
  uint64_t max_trigger = (goal - marked) / kTriggerRatioDen * kMaxTriggerRatioNum + marked;
  if (goal > kHeapMinimum && goal - kHeapMinimum > max_trigger) max_trigger = goal - kHeapMinimum;
  if (max_trigger < min_trigger) max_trigger = min_trigger;
  uint64_t trigger = g_runway > goal ? min_trigger : goal - g_runway;
  return std::clamp(trigger, min_trigger, max_trigger);
}

// Go's commit: the GOGC goal, the sweep distance and the runway.
void commit() {
  g_sweep_dist_min_trigger =
      sweep_done() ? 0 : gc_state().heap_live.load(std::memory_order_relaxed) + kSweepMinHeapDistance;
  g_gc_percent_goal = gc_percent_goal(g_last, g_gc_percent.load(std::memory_order_relaxed));
  double expected = static_cast<double>(g_last_heap_scan + g_last.stacks + g_last.globals);
  g_runway = static_cast<uint64_t>(std::max(0.0, g_cons_mark * (1 - kGoalUtilization) / kGoalUtilization * expected));
}
}  // namespace

double PiController::next(double input, double setpoint, double period, bool* ok) {
  double prop = kp * (setpoint - input);
  double raw = prop + integral;
  double out = raw;
  if (std::isinf(out) || std::isnan(out)) {
    integral = 0;
    *ok = false;
    return min;
  }
  out = std::clamp(out, min, max);
  if (ti != 0 && tt != 0) {
    integral += (kp * period / ti) * (setpoint - input) + (period / tt) * (out - raw);
    if (std::isinf(integral) || std::isnan(integral)) {
      integral = 0;
      *ok = false;
      return min;
    }
  }
  *ok = true;
  return out;
}

uint64_t heap_goal(const PacerInputs& in, int gc_percent, int64_t memory_limit, uint64_t non_heap, uint64_t overage,
                   HeapGrowth growth) {
  return std::min(gc_percent_goal(in, gc_percent), memory_limit_goal(in.marked, memory_limit, non_heap, overage, growth));
}

void pacer_update() {
  uint64_t min_trigger;
  uint64_t goal = goal_internal(&min_trigger);
  g_goal.store(goal, std::memory_order_relaxed);
  gc_state().trigger.store(trigger_for(goal, min_trigger), std::memory_order_relaxed);
}

int gc_percent() { return g_gc_percent.load(std::memory_order_relaxed); }
int64_t memory_limit() { return g_memory_limit.load(std::memory_order_relaxed); }
uint64_t current_goal() { return g_goal.load(std::memory_order_relaxed); }
const PacerInputs& last_cycle() { return g_last; }
double cons_mark() { return g_cons_mark; }

int set_gc_percent(int percent) {
  StoppableLockGuard g(world_lock());
  int old = g_gc_percent.load(std::memory_order_relaxed);
  g_gc_percent.store(percent < 0 ? -1 : percent, std::memory_order_relaxed);
  commit();
  pacer_update();
  return old;
}

int64_t set_memory_limit(int64_t limit) {
  StoppableLockGuard g(world_lock());
  int64_t old = g_memory_limit.load(std::memory_order_relaxed);
  if (limit >= 0) {
    g_memory_limit.store(limit, std::memory_order_relaxed);
    commit();
    pacer_update();
  }
  return old;
}

CycleWorkers pacer_start_cycle(uint64_t now_ns, int procs) {
  (void)now_ns;
  g_assist_ns.store(0, std::memory_order_relaxed);
  g_triggered = gc_state().heap_live.load(std::memory_order_relaxed);
  pacer_update();
  g_cycle_goal = current_goal();
  g_cycle_limited = g_cycle_goal < g_gc_percent_goal;
  // Go's startCycle: 25% of GOMAXPROCS, in dedicated workers when that rounds well.
  CycleWorkers w;
  double total = procs * kGoalUtilization;
  w.dedicated = static_cast<int>(total + 0.5);
  double err = w.dedicated / total - 1;
  if (err < -0.3 || err > 0.3) {
    if (w.dedicated > total) --w.dedicated;
    w.fractional = (total - w.dedicated) / procs;
  }
  pacer_revise();
  return w;
}

void pacer_revise() {
  int pct = gc_percent();
  if (pct < 0) pct = 100000;
  uint64_t live = gc_state().heap_live.load(std::memory_order_relaxed);
  auto work = static_cast<int64_t>(cycle_scan_work());  // done so far (gc/mgcwork.hpp)
  auto goal = static_cast<int64_t>(std::min<uint64_t>(g_cycle_goal, INT64_MAX / 4));
  auto expected = static_cast<int64_t>(g_last_heap_scan + g_last.stacks + g_last.globals);
  // The heap may have grown since the last cycle: as much scan work as the scannable heap now.
  uint64_t heap_scan_now =
      g_last.marked ? static_cast<uint64_t>(static_cast<double>(g_last_heap_scan) * live / g_last.marked) : live;
  auto max_work = static_cast<int64_t>(std::max(heap_scan_now, g_last_heap_scan) + g_last.stacks + g_last.globals);
  if (work > expected) {  // the mark overran its estimate: stretch the goal (Go's extHeapGoal)
    auto triggered = static_cast<int64_t>(g_triggered == ~uint64_t{0} ? live : g_triggered);
    auto ext = static_cast<int64_t>(static_cast<double>(goal - triggered) / std::max<int64_t>(expected, 1) *
                                    static_cast<double>(max_work)) + triggered;
    expected = max_work;
    auto hard = static_cast<int64_t>((1.0 + pct / 100.0) * static_cast<double>(goal));
    // Beyond Go 1.19: a goal the memory limit set is not stretched (Go stretches it up to
    // (1 + GOGC/100) times, without bound under GOGC=off): the next cycle needing as much memory
    // is no reason to pass the limit now. Assists pay instead; past the goal, the 10% below.
    if (g_cycle_limited) hard = goal;
    goal = std::min(ext, hard);
  }
  if (static_cast<int64_t>(live) > goal) {
    goal = static_cast<int64_t>(static_cast<double>(goal) * 1.1);
    expected = max_work;
  }
  int64_t remaining = std::max<int64_t>(expected - work, 1000);
  int64_t heap_remaining = std::max<int64_t>(goal - static_cast<int64_t>(live), 1);
  g_assist_work_per_byte.store(static_cast<double>(remaining) / static_cast<double>(heap_remaining),
                               std::memory_order_relaxed);
}

double assist_work_per_byte() {
  pacer_revise();
  return g_assist_work_per_byte.load(std::memory_order_relaxed);
}

void add_assist_time(uint64_t ns) { g_assist_ns.fetch_add(ns, std::memory_order_relaxed); }
uint64_t cycle_assist_ns() { return g_assist_ns.load(std::memory_order_relaxed); }

void pacer_end_cycle(const CycleResult& r, int procs) {
  // Go's endCycle: the cons/mark ratio this cycle ran at, smoothed. `live` is what the heap grew
  // to while the mark ran (heap_live itself already holds the marked heap).
  uint64_t live = r.heap_live;
  double duration = static_cast<double>(std::max<uint64_t>(r.mark_ns, 1)) * procs;
  double utilization = kGoalUtilization + static_cast<double>(cycle_assist_ns()) / duration;
  double idle = static_cast<double>(r.idle_ns) / duration;
  uint64_t work = r.heap_scan + r.stacks + r.globals;
  if (g_triggered != ~uint64_t{0} && live > g_triggered && work > 0 && utilization < 1) {
    double current = static_cast<double>(live - g_triggered) * (utilization + idle) /
                     (static_cast<double>(work) * (1 - utilization));
    bool ok;
    g_cons_mark = g_cons_mark_ctl.next(g_cons_mark, current, 1.0, &ok);
    if (!ok) g_cons_mark = 0;
  }
  g_triggered = ~uint64_t{0};
  g_last = {r.marked, r.stacks, r.globals};
  g_last_heap_scan = r.heap_scan;
  commit();
  pacer_update();
}

void pacer_end_cycle(const PacerInputs& in) {
  g_triggered = ~uint64_t{0};
  g_last = in;
  g_last_heap_scan = in.marked;
  commit();
  pacer_update();
}

}  // namespace gort::internal
