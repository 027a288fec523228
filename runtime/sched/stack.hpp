// Goroutine stacks (Go's stack.go), fixed-size in this version.
//
// Each goroutine gets a kStackSize stack with a PROT_NONE guard page below it, so an overflow
// faults instead of corrupting memory. Stacks of finished goroutines go back to a pool and are
// reused, so spawning costs no system call once the pool is warm. Both the stacks of live
// goroutines and the pooled ones count in StackInuse (the pool is memory held for stacks); the
// guard pages are address space only.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gort::internal {

constexpr size_t kStackSize = 64 << 10;

struct Stack {
  uintptr_t lo = 0, hi = 0;  // usable range [lo, hi); the guard page is just below lo
};

Stack stack_alloc();
void stack_free(Stack s);

}  // namespace gort::internal
