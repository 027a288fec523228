// Making an interrupted thread call a function (Go's sigctxt.pushCall, the mechanism behind its
// asynchronous preemption): from a signal handler, the interrupted context is changed so that,
// when the handler returns, the thread calls fn() as if the interrupted instruction had called
// it, and then continues exactly where it was, every register and flag as it was.
//
// How: the handler copies the kernel's signal frame (the general registers, and the vector and
// x87 state in the kernel's XSAVE layout) onto the interrupted stack, below its red zone, and
// points the context at a trampoline (gort_injected_call) on a stack pointer below that copy.
// The trampoline calls fn; when fn returns, it returns from the copied frame with rt_sigreturn,
// which restores the whole register file the kernel saved, the vector state included, whatever
// the processor has (AVX-512 too). fn may switch goroutines: the copy lives on the goroutine's
// stack, so it travels with the goroutine to whichever thread resumes it; only the frame's
// alternate-signal-stack description belongs to the thread, and it is set to the resuming
// thread's own just before the return. errno, a thread's, goes with the frame as well: the
// interrupted code finds the value it left, on whichever thread it continues.
//
// The copy is part of the stack: a collection that scans the goroutine while fn has it parked
// sees every register the interrupted code held, vector registers included.
#pragma once
#include <ucontext.h>

#include <cstddef>
#include <cstdint>

namespace gort::internal {

// From a signal handler for the thread it interrupted: arranges for fn(frame) to be called when
// the handler returns; `frame`, which it returns, is the copy of the kernel's signal frame on the
// interrupted stack (injected_frame_range gives the bytes it spans there). `stack_limit` is the
// lowest address the interrupted stack may use (the split-stack guard, or the stack's low end);
// `interrupted_errno` is errno as the handler found it. Null, and nothing changed, when the stack
// has no room for the copy and fn's first frames, or on an architecture without the trampoline.
void* inject_call(ucontext_t* uc, uintptr_t stack_limit, void (*fn)(void* frame), int interrupted_errno);
// The bytes of the vector and x87 state a signal frame's fpregs point at: the kernel's XSAVE
// image (AVX and AVX-512 registers included) as its software bytes give its size, else the
// 512-byte FXSAVE layout; 0 when the frame has none or its size is not plausible. x86-64 only.
size_t signal_frame_vector_bytes(const void* fpregs);
// The stack bytes the copy and the interrupted code's red zone take, [*lo, *hi): from the frame
// up to the interrupted stack pointer.
void injected_frame_range(const void* frame, uintptr_t* lo, uintptr_t* hi);

}  // namespace gort::internal
