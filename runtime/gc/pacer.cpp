#include "runtime/gc/pacer.hpp"

#include <mutex>

#include "runtime/core/thread.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
constexpr uint64_t kHeapMinimum = 4 << 20;
constexpr uint64_t kLimitHeadroom = 1 << 20;

int g_gc_percent = 100;
int64_t g_memory_limit = kNoMemoryLimit;
PacerInputs g_last;
uint64_t g_goal = kHeapMinimum;

// Mapped, unreleased memory that is not heap spans in use.
uint64_t non_heap_memory() {
  auto& st = stats();
  uint64_t ready = st.sys_total() - st.heap_released.load(std::memory_order_relaxed);
  uint64_t inuse = st.heap_inuse.load(std::memory_order_relaxed);
  return ready > inuse ? ready - inuse : 0;
}
}  // namespace

uint64_t heap_goal(const PacerInputs& in, int gc_percent, int64_t memory_limit, uint64_t non_heap) {
  uint64_t goal = kNoGoal;
  if (gc_percent >= 0) {
    uint64_t pct = static_cast<uint64_t>(gc_percent);
    goal = in.marked + (in.marked + in.stacks + in.globals) * pct / 100;
    uint64_t minimum = kHeapMinimum * pct / 100;
    if (goal < minimum) goal = minimum;
  }
  if (memory_limit != kNoMemoryLimit) {
    uint64_t limit = memory_limit > 0 ? static_cast<uint64_t>(memory_limit) : 0;
    uint64_t limit_goal = limit > non_heap + kLimitHeadroom ? limit - non_heap - kLimitHeadroom : 0;
    uint64_t floor = in.marked + in.marked / 16 + kLimitHeadroom;
    if (limit_goal < floor) limit_goal = floor;
    if (limit_goal < goal) goal = limit_goal;
  }
  return goal;
}

void pacer_update() {
  g_goal = heap_goal(g_last, g_gc_percent, g_memory_limit, non_heap_memory());
  gc_state().trigger.store(g_goal, std::memory_order_relaxed);
}

void pacer_end_cycle(const PacerInputs& in) {
  g_last = in;
  pacer_update();
}

int gc_percent() { return g_gc_percent; }
int64_t memory_limit() { return g_memory_limit; }
uint64_t current_goal() { return g_goal; }
const PacerInputs& last_cycle() { return g_last; }

int set_gc_percent(int percent) {
  std::lock_guard g(world_lock());
  int old = g_gc_percent;
  g_gc_percent = percent < 0 ? -1 : percent;
  pacer_update();
  return old;
}

int64_t set_memory_limit(int64_t limit) {
  std::lock_guard g(world_lock());
  int64_t old = g_memory_limit;
  if (limit >= 0) {
    g_memory_limit = limit;
    pacer_update();
  }
  return old;
}

}  // namespace gort::internal
