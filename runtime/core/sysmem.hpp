// sysmem: every byte gort obtains from the operating system passes through here.
//
// Design (Go's mem_linux.go): address space is either reserved (PROT_NONE, costs nothing and is
// not counted), or mapped read/write ("obtained from the OS"), or released back with madvise while
// staying mapped. Each call that maps memory names the MemStats *Sys counter the bytes belong to,
// so MemStats.Sys is by construction the sum of the *Sys fields and covers every mapping gort made.
//
// Invariant: a SysStat only changes through sys_map/sys_alloc/sys_free/transfer, never directly.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/core/splitstack.hpp"
#include "runtime/core/statsupdate.hpp"

namespace gort::internal {

// One of the *Sys fields of MemStats (HeapSys, StackSys, MSpanSys, MCacheSys, BuckHashSys,
// GCSys, OtherSys). Each change is a batch of its own (core/statsupdate.hpp); a transfer between
// two is one batch around both.
class SysStat {
 public:
  void add(int64_t delta) {
    StatsUpdate batch;
    bytes_.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
  }
  uint64_t load() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> bytes_{0};
};

// Maps `bytes` of zeroed read/write memory, counted in `stat`. Aborts with a clear message when the
// OS refuses (out of memory is fatal in Go too).
void* sys_alloc(size_t bytes, SysStat& stat);
// Unmaps memory obtained by sys_alloc.
void sys_free(void* p, size_t bytes, SysStat& stat);
// Reserves address space without backing or accounting (PROT_NONE). Returns nullptr on failure.
void* sys_reserve(void* hint, size_t bytes);
// Returns reserved (never mapped) address space.
void sys_unreserve(void* p, size_t bytes);
// Makes reserved space usable (read/write, zero-filled), counted in `stat`.
void sys_map(void* p, size_t bytes, SysStat& stat);
// The same, returning false instead of aborting when the OS refuses.
bool sys_try_map(void* p, size_t bytes, SysStat& stat);
// Tells the OS the pages are unused: physical memory is returned, the range stays mapped and
// reads back as zeroes. Accounting of released bytes is the caller's (HeapReleased).
void sys_unused(void* p, size_t bytes);

// no_split_stack: clang cannot give a C variadic function a split-stack prologue; it only
// collects its arguments and hands them to the (split-stack) formatter.
[[noreturn]] GORT_NO_SPLIT void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

constexpr size_t kOsPageSize = 4096;
inline constexpr uintptr_t round_up(uintptr_t n, uintptr_t align) { return (n + align - 1) & ~(align - 1); }
inline constexpr uintptr_t round_down(uintptr_t n, uintptr_t align) { return n & ~(align - 1); }

}  // namespace gort::internal
