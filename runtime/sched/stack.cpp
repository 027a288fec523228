#include "runtime/sched/stack.hpp"

#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
// The pool links free stacks through their own top word.
SpinLock g_lock;
uintptr_t g_free = 0;
}  // namespace

Stack stack_alloc() {
  {
    LockGuard g(g_lock);
    if (uintptr_t top = g_free) {
      g_free = *reinterpret_cast<uintptr_t*>(top - sizeof(uintptr_t));
      return Stack{top - kStackSize, top};
    }
  }
  auto* base = static_cast<char*>(sys_reserve(nullptr, kStackSize + kOsPageSize));
  if (!base || !sys_try_map(base + kOsPageSize, kStackSize, stats().stack_inuse)) {
    // Each fixed stack is two mappings (guard page and stack): the kernel's vm.max_map_count,
    // not memory, is what usually runs out first.
    fatal("cannot map another goroutine stack (%llu bytes of stacks in use): each takes two memory "
          "mappings and the kernel limits a process to vm.max_map_count of them; segmented stacks "
          "lift this limit",
          static_cast<unsigned long long>(stats().stack_inuse.load()));
  }
  uintptr_t lo = reinterpret_cast<uintptr_t>(base) + kOsPageSize;
  return Stack{lo, lo + kStackSize};
}

void stack_free(Stack s) {
  LockGuard g(g_lock);
  *reinterpret_cast<uintptr_t*>(s.hi - sizeof(uintptr_t)) = g_free;
  g_free = s.hi;
}

}  // namespace gort::internal
