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
int64_t background_credit();  // not yet drawn on, this cycle
void reset_assist_state();
// What an assist leaves in the thread's assist_debt (bytes of allocation) when `work_left` scan
// work is still owed (negative: done beyond the debt) at `per_byte` work per byte. A surplus
// becomes credit, at most kMaxAssistCredit bytes: at the start of a cycle the ratio can be tiny
// (no scan work measured yet), and one chunk at that ratio would otherwise excuse the thread
// from assisting for the rest of the cycle (the first cycle under GOMEMLIMIT ran 20% past its
// goal that way).
constexpr int64_t kMaxAssistCredit = 1 << 20;
int64_t assist_debt_after(int64_t work_left, double per_byte);

}  // namespace gort::internal
