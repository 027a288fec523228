#include "runtime/alloc/arena.hpp"

#include "runtime/core/sanitizer.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
// Where the next arena is asked for: from 0xc080000000 up, far from malloc, libraries and thread
// stacks (fewer words there look like heap pointers to the conservative scan). Go starts at
// 0xc000000000; gort starts 2 GiB higher because compilers store 32-bit values into 64-bit
// stack slots: a slot that held a heap pointer and then gets a non-negative int in its low half
// reads 0xc0'0000'xxxx, which from 0xc000000000 on would look like a pointer into the first
// spans (and keep a dead object alive, or trip gccheckmark). Shared by every ArenaMap, so a
// second map never takes the first one's spot.
std::atomic<uintptr_t> g_hint{(uintptr_t{0xc0} << 32) | (uintptr_t{1} << 31)};
}  // namespace

uintptr_t ArenaMap::add_arena() {
  // Reserve twice the size and trim, so the arena is aligned whatever address the kernel picks.
  uintptr_t base = 0;
  for (int attempt = 0; attempt < 2 && base == 0; ++attempt) {
    void* hint = attempt == 0 ? reinterpret_cast<void*>(g_hint.load(std::memory_order_relaxed)) : nullptr;
    auto* p = static_cast<char*>(sys_reserve(hint, 2 * kArenaSize));
    if (!p) continue;
    uintptr_t start = reinterpret_cast<uintptr_t>(p);
    base = round_up(start, kArenaSize);
    if (base > start) sys_unreserve(p, base - start);
    uintptr_t end = start + 2 * kArenaSize;
    if (end > base + kArenaSize) sys_unreserve(reinterpret_cast<void*>(base + kArenaSize), end - base - kArenaSize);
  }
  if (base == 0) fatal("out of memory: cannot reserve a %zu MiB heap arena", kArenaSize >> 20);
  g_hint.store(base + kArenaSize, std::memory_order_relaxed);
#if GORT_ASAN
  // LeakSanitizer's roots are stacks, globals and thread-locals: managed objects hold malloc'd
  // memory too (a std::string member), which it would otherwise report as leaked.
  __lsan_register_root_region(reinterpret_cast<void*>(base), kArenaSize);
#endif

  uintptr_t n = base >> kArenaShift;
  auto& slot = l1_[(n >> kArenaL2Bits) & ((size_t{1} << kArenaL1Bits) - 1)];
  HeapArena** l2 = slot.load(std::memory_order_relaxed);
  if (!l2) {
    l2 = static_cast<HeapArena**>(sys_alloc(sizeof(HeapArena*) << kArenaL2Bits, stats().gc_sys));
    slot.store(l2, std::memory_order_release);
  }
  l2[n & ((size_t{1} << kArenaL2Bits) - 1)] = static_cast<HeapArena*>(sys_alloc(sizeof(HeapArena), stats().gc_sys));

  if (base < lo_.load(std::memory_order_relaxed)) lo_.store(base, std::memory_order_relaxed);
  if (base + kArenaSize > hi_.load(std::memory_order_relaxed)) hi_.store(base + kArenaSize, std::memory_order_relaxed);
  return base;
}

}  // namespace gort::internal
