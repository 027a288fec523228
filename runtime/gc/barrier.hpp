// The write barrier and shading (see mbarrier.cpp for the design).
#pragma once
#include <cstddef>
#include <cstdint>

namespace gort::internal {

class MarkWorker;

// A thread's buffer of pointers to shade (Go's wbBuf). Entries with kShadeNew set name an
// object allocated black whose contents must be scanned once (its constructor's stores ran no
// barrier). Only the owning thread appends; the collector empties it with the owner stopped.
constexpr int kWbBufEntries = 256;
constexpr uintptr_t kShadeNew = uintptr_t{1} << 63;
struct WbBuf {
  uint32_t n = 0;
  uintptr_t e[kWbBufEntries];
};

// True while a concurrent mark runs: the barrier is on and new objects are allocated black.
bool gc_marking();

// Shades p (one pointer), as the barrier does.
void shade(const void* p) noexcept;
// Shades every word of [p, p + n) that points into the heap (a value of a type-erased type: a
// channel element, a closure's captures).
void shade_range(const void* p, size_t n) noexcept;

// Marks everything in b (the owning thread, inside a critical section; or the collector with the
// owner stopped).
void wb_flush(WbBuf& b);
// Empties b without shading (a new cycle starts: entries from the last one mean nothing).
inline void wb_reset(WbBuf& b) { b.n = 0; }
// Marks what threads that are not attached shaded (they have no buffer of their own).
size_t drain_shaded(MarkWorker& w);

}  // namespace gort::internal
