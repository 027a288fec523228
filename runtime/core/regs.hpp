// Zeroing the caller-saved registers, where a stop or a switch would otherwise leave stale words.
//
// The collector reads registers conservatively: at a stop they are roots, whatever the code they
// interrupted still needs. A caller-saved register is dead across a call, but keeps its value
// until something overwrites it, so one that held a pointer before a call may still hold it when
// a later stop finds the thread (after a stack switch, or after a wait during which a collection
// scanned the thread without it: blocked_wait records no registers). A collection scans a stack
// once; the registers a later stop finds must all be live or newer than that scan, or the
// checking mark of GODEBUG=gccheckmark=1 finds an object the concurrent mark rightly left white.
// Always inlined, no calls: they run in no_split_stack code and around stack switches.
#pragma once

namespace gort::internal {

// rcx, r8-r11 and xmm0-15: what a switch clears (rax, rdx, rdi and rsi carry its arguments).
__attribute__((always_inline)) inline void clear_scratch_registers() {
#if defined(__x86_64__)
  asm volatile(
      "xorl %%ecx, %%ecx\n\txorl %%r8d, %%r8d\n\txorl %%r9d, %%r9d\n\txorl %%r10d, %%r10d\n\txorl %%r11d, %%r11d\n\t"
      "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
      "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
      "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
      "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
      :
      :
      : "rcx", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
#endif
}

// Every caller-saved register: after a cooperative stop or a wait, where all of them are dead.
__attribute__((always_inline)) inline void clear_caller_saved_registers() {
#if defined(__x86_64__)
  asm volatile("xorl %%eax, %%eax\n\txorl %%edx, %%edx\n\txorl %%esi, %%esi\n\txorl %%edi, %%edi"
               :
               :
               : "rax", "rdx", "rsi", "rdi");
  clear_scratch_registers();
#endif
}

}  // namespace gort::internal
