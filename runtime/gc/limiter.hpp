// The GC CPU limiter (Go 1.19's mgclimit.go).
//
// A leaky bucket of CPU time: it fills with the collector's CPU time (stop-the-world phases count
// every processor, a concurrent mark its 25% share, mark assists their own time) and drains
// with the program's; its capacity is one CPU-second per processor. Full, the limiter is on: mark
// assists stop (assist.hpp), so the collector cannot take more than about half of the CPU over
// the window however far the heap is past its goal or its memory limit. The program keeps
// progressing, and the heap may then grow past the limit: the limit yields when live memory truly
// exceeds it, as in Go. Idle time is not subtracted (Go subtracts idle processors' time): a
// program that idles drains the bucket as if it computed.
#pragma once
#include <cstdint>

namespace gort::internal {

bool cpu_limiter_limiting();
// A stop-the-world transition into (gc_on) or out of a concurrent mark: everything until
// limiter_finish_transition counts as collector time on every processor.
void limiter_start_transition(bool gc_on, uint64_t now_ns, int procs);
void limiter_finish_transition(uint64_t now_ns);
// Folds in the time since the last update (at most every 10 ms does anything).
void limiter_update(uint64_t now_ns);
void limiter_add_assist_time(uint64_t ns);
// Cycles in which the limiter was on (for tests and gctrace).
uint32_t limiter_enabled_cycles();

}  // namespace gort::internal
