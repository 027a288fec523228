// The runtime as AddressSanitizer and ThreadSanitizer see it (`./run sanitize`, fixed stacks;
// docs/reliability.md, "Sanitizers"). Everything here is empty in an ordinary build.
//
// Two things a sanitizer cannot work out by itself:
//  - Goroutines run on stacks gort allocated, switched by Boost.Context. A sanitizer that is not
//    told believes the thread is still on its own stack: ASan then cannot clear the poison of a
//    frame that an exception or a switch abandoned (__asan_handle_no_return gives up on a "stack"
//    of gigabytes) and reports frames it mixed up; TSan keeps one shadow call stack and one clock
//    per thread for every goroutine the thread runs. Each switch is announced: ASan's
//    start/finish_switch_fiber pair around it, TSan's switch_to_fiber before it (a fiber per
//    goroutine, created when it first runs, destroyed by the scheduler once it exited; the M's
//    own fiber is the thread's).
//  - The collector reads memory it does not own on purpose: conservatively scanned stacks
//    (ASan poisons the redzones between locals), registered roots and whole objects under
//    concurrent mutation (TSan would call each such read a race; the tri-color invariant and the
//    write barrier, not a lock, make them correct: docs/gc.md). Those readers are
//    GORT_NO_SANITIZE_SCAN: neither sanitizer instruments them. Each use says why.
#pragma once
#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__)
#define GORT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GORT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORT_TSAN 1
#endif
#endif
#ifndef GORT_ASAN
#define GORT_ASAN 0
#endif
#ifndef GORT_TSAN
#define GORT_TSAN 0
#endif

#if GORT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif
#if GORT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

// A function that reads memory the way the collector does (see above). Sanitizers that are not
// on ignore the attribute's names, hence the build-specific spelling.
#if GORT_ASAN
#define GORT_NO_SANITIZE_SCAN __attribute__((no_sanitize("address")))
#elif GORT_TSAN
#define GORT_NO_SANITIZE_SCAN __attribute__((no_sanitize("thread")))
#else
#define GORT_NO_SANITIZE_SCAN
#endif

namespace gort::internal {

constexpr bool kSanitized = GORT_ASAN || GORT_TSAN;
constexpr bool kThreadSanitizer = GORT_TSAN;

// One side of a switch: what the sanitizers keep per stack.
struct SanitizerFiber {
#if GORT_ASAN
  void* fake_stack = nullptr;       // ASan's per-stack save (use-after-return's fake frames)
#endif
#if GORT_TSAN
  void* tsan = nullptr;             // TSan's fiber
#endif
  const void* stack_bottom = nullptr;  // where the stack is, for the side that switches to it
  size_t stack_size = 0;
};

// Before a switch from the running side to `to`; `from` is null when the running side ends
// (an exiting goroutine: ASan drops its fake frames).
inline void sanitizer_start_switch([[maybe_unused]] SanitizerFiber* from, [[maybe_unused]] const SanitizerFiber& to) {
#if GORT_ASAN
  __sanitizer_start_switch_fiber(from ? &from->fake_stack : nullptr, to.stack_bottom, to.stack_size);
#endif
#if GORT_TSAN
  __tsan_switch_to_fiber(to.tsan, 0);
#endif
}

// First thing on the side that now runs (`self`); `from` learns where the stack it left is.
inline void sanitizer_finish_switch([[maybe_unused]] SanitizerFiber& self, [[maybe_unused]] SanitizerFiber* from) {
#if GORT_ASAN
  __sanitizer_finish_switch_fiber(self.fake_stack, from ? &from->stack_bottom : nullptr,
                                  from ? &from->stack_size : nullptr);
#endif
}

// A goroutine's fiber: made before it first runs, dropped once it ended (from another fiber).
inline void sanitizer_fiber_create([[maybe_unused]] SanitizerFiber& f, const void* bottom, size_t size) {
  f.stack_bottom = bottom;
  f.stack_size = size;
#if GORT_TSAN
  f.tsan = __tsan_create_fiber(0);
#endif
}
inline void sanitizer_fiber_destroy([[maybe_unused]] SanitizerFiber& f) {
#if GORT_TSAN
  if (f.tsan) __tsan_destroy_fiber(f.tsan);
  f.tsan = nullptr;
#endif
#if GORT_ASAN
  f.fake_stack = nullptr;
#endif
  f.stack_bottom = nullptr;
  f.stack_size = 0;
}
// A word ASan has poisoned: a redzone between locals, or a local out of scope whose slot still
// holds what an earlier use (or an earlier, deeper frame) stored there. Conservative scans skip
// it (mgcwork.cpp).
inline bool dead_to_asan([[maybe_unused]] uintptr_t a) {
#if GORT_ASAN
  return __asan_region_is_poisoned(reinterpret_cast<void*>(a), sizeof(uintptr_t)) != nullptr;
#else
  return false;
#endif
}

// A thread's own fiber (an M's scheduler side).
inline void sanitizer_fiber_of_thread([[maybe_unused]] SanitizerFiber& f) {
#if GORT_TSAN
  f.tsan = __tsan_get_current_fiber();
#endif
}

}  // namespace gort::internal
