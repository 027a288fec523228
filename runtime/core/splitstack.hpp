// The compiler's split-stack support as the runtime sees it (builds with -Dstacks=split; see
// runtime/sched/stack.hpp for the design). Everything here is empty in the fixed-stack build.
//
// Code compiled with -fsplit-stack checks, in each function's prologue, that its frame fits
// above a guard word in the thread control block (%fs:0x70 on x86-64), and calls libgcc's
// __morestack for a new stack segment when it does not. Two kinds of code must not run such a
// check: the switch between two stacks (the guard describes one of them while the stack pointer
// is on the other) and signal handlers on an alternate signal stack. They are no_split_stack
// (GORT_NO_SPLIT, on the first declaration: gcc ignores it on a definition that follows one), and
// call split-stack code only once the guard matches the stack they run on.
#pragma once
#include <signal.h>

#include <cstddef>
#include <cstdint>

#if GORT_SPLIT_STACK
#if !defined(__x86_64__)
#error "gort's split stacks are x86-64 only: configure with -Dstacks=fixed"
#endif
#define GORT_NO_SPLIT __attribute__((no_split_stack))
extern "C" {
// libgcc (generic-morestack.c): a context is ten words holding the thread's split-stack state.
void __splitstack_getcontext(void* context[10]) __attribute__((no_split_stack));
void __splitstack_setcontext(void* context[10]) __attribute__((no_split_stack));
void* __splitstack_makecontext(size_t stack_size, void* context[10], size_t* size);
void __splitstack_releasecontext(void* context[10]);
void* __splitstack_find(void* segment, void* sp, size_t* len, void** next_segment, void** next_sp,
                        void** initial_sp);
void* __morestack_make_guard(void* stack, size_t size) __attribute__((no_split_stack, visibility("hidden")));
// The thread's split-stack state (generic-morestack.c; exported for all split-stack code):
// what __splitstack_getcontext/setcontext save and restore. gort's switches read and write them
// directly (initial-exec: a few instructions, no call); stack_init checks they agree with
// libgcc's own functions.
struct gort_morestack_initial_sp {  // libgcc's struct initial_sp
  void* sp;
  size_t len;
  sigset_t mask;
  uintptr_t dont_block_signals;
  void* extra[4];
};
extern __thread void* __morestack_segments __attribute__((tls_model("initial-exec")));
extern __thread void* __morestack_current_segment __attribute__((tls_model("initial-exec")));
extern __thread gort_morestack_initial_sp __morestack_initial_sp __attribute__((tls_model("initial-exec")));
}
#else
#define GORT_NO_SPLIT
#endif

namespace gort::internal {

#if GORT_SPLIT_STACK
constexpr bool kSplitStacks = true;
// The calling thread's guard word. Always inlined: they run in no_split_stack code.
__attribute__((always_inline, no_split_stack)) inline uintptr_t split_guard();
__attribute__((always_inline, no_split_stack)) inline void set_split_guard(uintptr_t g);
inline uintptr_t split_guard() {
  uintptr_t g;
  asm volatile("movq %%fs:0x70, %0" : "=r"(g));
  return g;
}
inline void set_split_guard(uintptr_t g) {
  asm volatile("movq %0, %%fs:0x70" : : "r"(g) : "memory");
}
#else
constexpr bool kSplitStacks = false;
#endif

}  // namespace gort::internal
