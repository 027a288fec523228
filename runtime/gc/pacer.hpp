// The pacer (Go's mgcpacer.go): when the next cycle should start.
//
// Go 1.18's heap goal:  goal = marked + (marked + stacks + globals) * GOGC / 100,
// never below heapMinimum = 4 MiB * GOGC / 100. GOGC < 0 ("off") disables it.
// With a memory limit (GOMEMLIMIT / SetMemoryLimit), the goal is also capped, as in Go 1.19, at
//   limit - (memory mapped and not returned to the OS that is not heap) - 1 MiB headroom,
// and never below the marked heap plus a margin (marked/16 + 1 MiB): past the limit, gort collects
// at a bounded rate instead of continuously (Go bounds the same case with its GC CPU limiter).
// Marking is not concurrent yet, so the trigger is the goal itself.
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

// The goal for a heap with the given last-cycle figures and settings. `non_heap` is the mapped,
// unreleased memory that is not heap spans (stacks, metadata, free heap pages) at this moment.
uint64_t heap_goal(const PacerInputs& in, int gc_percent, int64_t memory_limit, uint64_t non_heap);

int gc_percent();
int set_gc_percent(int percent);  // returns the previous value; recomputes the goal
int64_t memory_limit();
int64_t set_memory_limit(int64_t limit);  // negative: only reads
// Records a finished mark and recomputes goal and trigger.
void pacer_end_cycle(const PacerInputs& in);
uint64_t current_goal();
const PacerInputs& last_cycle();
// Recomputes goal and trigger after a setting changed (world lock held).
void pacer_update();

}  // namespace gort::internal
