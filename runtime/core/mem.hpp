// Zeroing and copying memory without calling libc.
//
// With split stacks (core/splitstack.hpp) a function that calls libc's memset or memcpy is made,
// by the linker, to ask for a 1 MiB stack segment before it runs, since libc is not built with
// -fsplit-stack. The runtime's paths that run on goroutine stacks (allocation, channel and timer
// bookkeeping) use these instead: an inline instruction sequence (x86-64's rep stosb / rep movsb,
// which CPUs with fast-string support run at memset speed for all but the smallest sizes).
#pragma once
#include <cstddef>
#include <cstring>

namespace gort::internal {

inline void mem_zero(void* p, size_t n) {
#if defined(__x86_64__)
  asm volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0) : "memory");
#else
  std::memset(p, 0, n);
#endif
}

inline void mem_copy(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
#else
  std::memcpy(dst, src, n);
#endif
}

}  // namespace gort::internal
