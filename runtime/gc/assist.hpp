// Mark assists (Go's gcAssistAlloc).
//
// While a mark runs, a thread that allocates pays for what it takes with scan work, at the
// pacer's rate (assist_work_per_byte: the scan work still expected over the heap still allowed
// before the goal), so that marking ends before the heap reaches its goal however fast the
// program allocates. Debt is charged per span taken (mcache.cpp) and per large object; it is
// paid first with the background workers' surplus (Go's bgScanCredit), then by draining grey
// objects on the allocating thread (on its M's stack, one critical section per chunk: a stop
// never finds it holding unpublished work). With nothing to drain it waits for the workers,
// since allocating further would overshoot the goal; the CPU limiter (limiter.hpp) switches
// assists off when the collector has used too much CPU.
#pragma once
#include <cstdint>

namespace gort::internal {

struct Cache;

// Pays c's assist debt (called after an allocation, outside any critical section).
void gc_assist(Cache* c);
// The background workers' scan work beyond what assists asked for: assists draw on it first.
void add_background_credit(int64_t work);
void reset_assist_state();

}  // namespace gort::internal
