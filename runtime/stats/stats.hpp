// The runtime's statistics, from which ReadMemStats builds one MemStats snapshot.
//
// Every counter is updated by the component that does the work, at the moment it does it:
//  - the *Sys counters by sysmem (each mapping names its counter);
//  - span/cache in-use bytes by FixAlloc;
//  - heap_inuse / heap_released by the page heap (under its lock);
//  - allocation counts by the per-thread caches (kept there, flushed here when a cache gives its
//    spans back, and summed from the live caches by ReadMemStats) and frees by the sweeper;
//  - the pause history by the collector, at the end of each cycle.
// Every update is part of a batch (core/statsupdate.hpp) that keeps the identities of
// docs/memstats.md, so ReadMemStats reads a consistent snapshot without stopping the world.
#pragma once
#include <atomic>
#include <cstdint>

#include "runtime/alloc/sizeclasses.hpp"
#include "runtime/core/statsupdate.hpp"
#include "runtime/core/sysmem.hpp"

namespace gort::internal {

struct RuntimeStats {
  // Bytes obtained from the OS, by purpose (MemStats.*Sys).
  SysStat heap_sys, stack_sys, mspan_sys, mcache_sys, buckhash_sys, gc_sys, other_sys;

  SysStat stack_inuse;  // goroutine stacks, live and pooled (MemStats.StackInuse)
  std::atomic<uint64_t> mspan_inuse{0};
  std::atomic<uint64_t> mcache_inuse{0};

  // Page heap: bytes in spans that hold objects, and bytes of idle pages returned to the OS.
  std::atomic<uint64_t> heap_inuse{0};
  std::atomic<uint64_t> heap_released{0};

  // Allocation counts not held by a live cache. Objects of size class c count in
  // small_mallocs[c] when the cache that allocated them flushes; frees when the sweeper frees them.
  std::atomic<uint64_t> small_mallocs[kNumSizeClasses]{};
  std::atomic<uint64_t> small_frees[kNumSizeClasses]{};
  std::atomic<uint64_t> large_mallocs{0}, large_alloc_bytes{0};
  std::atomic<uint64_t> large_frees{0}, large_free_bytes{0};
  std::atomic<uint64_t> tiny_allocs{0};

  // Collector history: written by the collector in one batch at the end of each cycle, read
  // concurrently (relaxed atomic accesses through std::atomic_ref).
  uint32_t numgc = 0;
  uint32_t numforcedgc = 0;
  uint64_t pause_total_ns = 0;
  uint64_t pause_ns[256] = {};
  uint64_t pause_end[256] = {};
  uint64_t last_gc_unix_ns = 0;
  std::atomic<uint64_t> gc_cpu_ns{0};  // measured CPU time of collection work since start

  // MemStats.Sys: every byte obtained from the OS (StackSys = StackInuse + stack_sys).
  uint64_t sys_total() const {
    return heap_sys.load() + stack_inuse.load() + stack_sys.load() + mspan_sys.load() +
           mcache_sys.load() + buckhash_sys.load() + gc_sys.load() + other_sys.load();
  }
};

RuntimeStats& stats() noexcept;

}  // namespace gort::internal
