// The kernel's signal frame at the top of an alternate signal stack, read back.
//
// A thread stopped while a signal handler of the program's runs (SA_ONSTACK) is stopped with the
// handler's stack pointer, on the alternate stack. The code that handler interrupted (a
// goroutine, or the thread's own code) left its registers, its stack pointer among them, in the
// frame the kernel built near the top of that stack when it delivered the outermost signal. That
// stack pointer says where the live part of the interrupted stack ends; without it a collector
// must take the whole stack for live, dead frames included (which the checking mark of
// GODEBUG=gccheckmark=1 then reports as missed by the concurrent mark, and which keeps garbage).
//
// The frame is found by its shape, not by address arithmetic (where the kernel puts it depends
// on the processor's XSAVE size): the highest ucontext in [sp, top of the stack) that records this
// very alternate stack with the interrupted code not on it (the outermost delivery; a nested one
// records SS_ONSTACK), with uc_link null (the kernel writes 0), on x86-64 an fpstate pointer null
// or above it within the stack, and a saved stack pointer off the alternate stack.
// Async-signal-safe: it only reads the alternate stack.
#pragma once
#include <signal.h>

#include <cstdint>

#include "runtime/core/splitstack.hpp"

namespace gort::internal {

// `alt` is the thread's alternate signal stack and `sp` a stack pointer on it (the innermost
// handler's): the interrupted code's stack pointer, or 0 when no frame has that shape.
GORT_NO_SPLIT uintptr_t interrupted_stack_pointer(const stack_t& alt, uintptr_t sp);

}  // namespace gort::internal
