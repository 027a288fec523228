// The background scavenger (Go's mgcscavenge.go): returns idle heap pages to the OS.
//
// Go's goal: keep the memory retained by the heap (HeapSys - HeapReleased) at most 10% above the
// heap goal, and, with a memory limit, total retained memory at most 95% of the limit. After each
// cycle and periodically (every 100 ms) the scavenger compares and releases the excess free pages
// with madvise(MADV_DONTNEED), at most kMaxStep per critical section so it never holds up a
// collection. Released pages count in HeapReleased until they are allocated again.
#pragma once
#include <cstddef>

namespace gort::internal {

void start_scavenger();
void stop_scavenger();
void wake_scavenger();
// Bytes the scavenger would release now to meet its goals.
size_t scavenge_excess();

}  // namespace gort::internal
