// Preemption (Go's preempt.go and its asynchronous preemption, Go 1.14): a goroutine that runs
// for more than 10 ms without blocking or yielding is made to yield, so that one busy loop
// cannot take a processor from every other goroutine (with GOMAXPROCS=1, from all of them).
//
// How (the policy in sched/proc.cpp's sysmon, the mechanics here and in core/signalcall.hpp):
// sysmon notices an M that has run the same goroutine for 10 ms and stops that M's thread alone
// with the suspend signal (core/thread.hpp's stop_thread). With the thread held in the handler,
// sysmon looks at where it was interrupted; where that is safe, it asks the handler to make the
// interrupted code call async_preempted() on its way out, which yields the processor as
// Gosched does (the goroutine goes to the global run queue); when the goroutine runs again, on
// any thread, it continues at the interrupted instruction with every register as it was.
//
// Safe points. Go's compiler marks the instructions where it is unsafe to stop; C++ has no such
// tables, so the rule is coarser and conservative:
//   - not inside a critical section of the runtime: those defer every stop, so the thread then
//     stops at the section's end, a call into gort, which is never used as a preemption point;
//   - not on the M's own stack (the runtime's slow paths, on_system_stack), not inside blocking()
//     (the goroutine has no processor to give up), not in the scheduler;
//   - the interrupted instruction is in the program's code or a library of the program's, not in
//     gort's runtime (a function compiled from runtime/, which may hold an M or a P in a register
//     outside a critical section), not in a system library (libc, libstdc++, libgcc: they take
//     their own locks, which a goroutine must not carry to another thread, and they are built
//     without split stacks), not in libgcc's split-stack code (__morestack and its helpers) and
//     not at an address without a symbol (a stripped program is never preempted).
//   - the goroutine's body as go() wraps it (GoClosure<F>::call, a public header's code with the
//     program's inlined into it) counts as the program's.
// The verdict for an address is computed once per function, from the symbol tables
// (libbacktrace) and the loaded objects (dl_iterate_phdr), by a thread of its own (gort-preempt),
// never with a thread stopped: sysmon releases the thread, queues the address, waits a moment
// for the verdict and tries again. Sysmon never reads a symbol table itself: the first read
// takes a few hundred milliseconds, and sysmon fires timers.
//
// What this means for C++ code on goroutines (docs/scheduler.md, "Preemption"): a goroutine can
// be switched to another thread at almost any instruction of its own code, as it can at any
// call into gort. A std::mutex held over a long computation is held by a goroutine that may sit
// in a run queue; a thread_local's address kept across such code names another thread's copy.
#pragma once
#include <cstdint>

namespace gort::internal {

enum class CodeVerdict : int8_t { Unknown = -1, NotPreemptible = 0, Preemptible = 1 };

// Whether the instruction at pc may be interrupted by a preemption: the classification itself
// (reads symbol tables; allocates). Any thread, never with another thread stopped.
bool preemptible_code(uintptr_t pc);

// The verdicts learnt so far, one per function. The lookup is for sysmon while it holds a thread
// stopped: no allocation, no waiting (Unknown when the table is being written). learn() queues pc
// for the classifier thread and waits up to wait_ns for a verdict; never with a thread stopped.
CodeVerdict preempt_cached_verdict(uintptr_t pc);
void preempt_learn(uintptr_t pc, int64_t wait_ns);

// The classifier thread's lifetime (the scheduler's).
void preempt_start();
void preempt_stop();

}  // namespace gort::internal
