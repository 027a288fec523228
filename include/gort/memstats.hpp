// Go's runtime.MemStats, ReadMemStats, GC and runtime/debug's tuning knobs.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

namespace gort {

// Exactly Go's runtime.MemStats: same fields, names, types and meanings (see docs/memstats.md).
struct MemStats {
  // General statistics.
  uint64_t Alloc;         // bytes of allocated heap objects (== HeapAlloc)
  uint64_t TotalAlloc;    // cumulative bytes allocated for heap objects
  uint64_t Sys;           // bytes obtained from the OS: the sum of the *Sys fields below
  uint64_t Lookups;       // pointer lookups by the runtime: always 0, as in Go
  uint64_t Mallocs;       // cumulative count of heap objects allocated
  uint64_t Frees;         // cumulative count of heap objects freed

  // Heap memory statistics.
  uint64_t HeapAlloc;     // bytes of allocated heap objects
  uint64_t HeapSys;       // bytes of heap memory obtained from the OS
  uint64_t HeapIdle;      // bytes in idle (unused) spans
  uint64_t HeapInuse;     // bytes in in-use spans
  uint64_t HeapReleased;  // bytes of physical memory returned to the OS
  uint64_t HeapObjects;   // number of allocated heap objects

  // Stack memory statistics.
  uint64_t StackInuse;    // bytes in stack spans
  uint64_t StackSys;      // bytes of stack memory obtained from the OS

  // Off-heap memory statistics.
  uint64_t MSpanInuse;    // bytes of allocated span structures
  uint64_t MSpanSys;      // bytes obtained from the OS for span structures
  uint64_t MCacheInuse;   // bytes of allocated per-thread cache structures
  uint64_t MCacheSys;     // bytes obtained from the OS for cache structures
  uint64_t BuckHashSys;   // bytes of memory in profiling bucket hash tables
  uint64_t GCSys;         // bytes of memory in garbage collection metadata
  uint64_t OtherSys;      // bytes of miscellaneous off-heap runtime allocations

  // Garbage collector statistics.
  uint64_t NextGC;        // target heap size of the next GC cycle (the heap goal)
  uint64_t LastGC;        // time the last GC finished, in nanoseconds since the Unix epoch
  uint64_t PauseTotalNs;  // cumulative nanoseconds of stop-the-world pauses
  uint64_t PauseNs[256];  // recent pause times; the latest is at [(NumGC+255)%256]
  uint64_t PauseEnd[256]; // recent pause end times (Unix ns), same indexing
  uint32_t NumGC;         // number of completed GC cycles
  uint32_t NumForcedGC;   // number of cycles forced by the application calling GC()
  double GCCPUFraction;   // fraction of available CPU time used by the GC since start
  bool EnableGC;          // always true
  bool DebugGC;           // currently unused: false

  struct SizeClass {
    uint32_t Size;        // maximum byte size of an object in this class
    uint64_t Mallocs;     // cumulative count of objects allocated in this class
    uint64_t Frees;       // cumulative count of objects freed in this class
  };
  // Per-size-class statistics: Go's first 61 size classes (0, 8, 16, 24, 32, 48, ... 18432).
  SizeClass BySize[61];
};

// Fills *m with one consistent snapshot of the memory allocator and collector statistics. Like Go,
// it briefly stops the world.
void ReadMemStats(MemStats* m);

// Runs a full garbage collection and blocks until it is complete (counts in NumForcedGC).
void GC();

namespace debug {
// Sets GOGC (percent; negative disables the collector) and returns the previous setting.
int SetGCPercent(int percent);
// Sets the soft memory limit in bytes and returns the previous one; a negative value only reads.
int64_t SetMemoryLimit(int64_t limit);
// Forces a collection, then returns as much memory to the OS as possible.
void FreeOSMemory();

// Go's debug.GCStats.
struct GCStats {
  std::chrono::system_clock::time_point LastGC;      // end of the last collection (the epoch if none)
  int64_t NumGC = 0;                                 // collections completed
  std::chrono::nanoseconds PauseTotal{0};            // stop-the-world time of all of them
  std::vector<std::chrono::nanoseconds> Pause;       // pause of each of the last 256, newest first
  std::vector<std::chrono::system_clock::time_point> PauseEnd;  // their ends, newest first
  // Set its size before the call to ask for quantiles: n+1 entries hold the minimum, the n-1
  // quantiles between and the maximum of Pause (5 entries: min, 25%, 50%, 75%, max).
  std::vector<std::chrono::nanoseconds> PauseQuantiles;
};
// Go's debug.ReadGCStats: fills *stats from the collector's pause history.
void ReadGCStats(GCStats* stats);
}  // namespace debug

}  // namespace gort
