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

// xmm0-15's low 128 bits (legacy SSE: the upper halves keep their values).
__attribute__((always_inline)) inline void clear_sse_registers() {
#if defined(__x86_64__)
  asm volatile(
      "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
      "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
      "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
      "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
      :
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15");
#endif
}

// Every vector register in full: xmm0-15 with their upper halves (ymm, and zmm on AVX-512), and
// zmm16-31. gort's code, built for the x86-64 baseline, uses only xmm0-15's low 128 bits, but
// glibc's string functions use the rest (its AVX2 and EVEX memcpy, memset, strlen: zmm16-31 are
// the EVEX variants' registers, free of vzeroupper), a new thread inherits them from its creator,
// nothing else clears them, and a signal frame saves them all (XSAVE) on the stack it
// interrupts, where a later frame's unwritten slots can show them. Legacy pxor clears only the
// low halves (test_thread.cpp plants a word in ymm15's upper half and in zmm16 and finds it
// gone after blocked_wait only with this). 128-bit instructions throughout (VEX and EVEX encoded
// ones zero the register above them): a 512-bit one may lower the core's clock. The features are
// read from libgcc's CPU model (a load, no call); before its constructor has run it reads as the
// baseline.
__attribute__((always_inline)) inline void clear_vector_registers() {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx")) {
    clear_sse_registers();
    return;
  }
  asm volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\tvpxor %%xmm1, %%xmm1, %%xmm1\n\tvpxor %%xmm2, %%xmm2, %%xmm2\n\t"
      "vpxor %%xmm3, %%xmm3, %%xmm3\n\tvpxor %%xmm4, %%xmm4, %%xmm4\n\tvpxor %%xmm5, %%xmm5, %%xmm5\n\t"
      "vpxor %%xmm6, %%xmm6, %%xmm6\n\tvpxor %%xmm7, %%xmm7, %%xmm7\n\tvpxor %%xmm8, %%xmm8, %%xmm8\n\t"
      "vpxor %%xmm9, %%xmm9, %%xmm9\n\tvpxor %%xmm10, %%xmm10, %%xmm10\n\tvpxor %%xmm11, %%xmm11, %%xmm11\n\t"
      "vpxor %%xmm12, %%xmm12, %%xmm12\n\tvpxor %%xmm13, %%xmm13, %%xmm13\n\tvpxor %%xmm14, %%xmm14, %%xmm14\n\t"
      "vpxor %%xmm15, %%xmm15, %%xmm15"
      :
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15");
  // zmm16-31 (EVEX.128 needs AVX512VL, which every AVX-512 processor but Xeon Phi has; there the
  // registers stay). Clobbers named only where the compiler may use these registers itself (gcc
  // rejects them for a target without AVX-512; without it, no code of this build keeps anything
  // there).
  if (__builtin_cpu_supports("avx512vl")) {
    asm volatile(
        "vpxord %%xmm16, %%xmm16, %%xmm16\n\tvpxord %%xmm17, %%xmm17, %%xmm17\n\tvpxord %%xmm18, %%xmm18, %%xmm18\n\t"
        "vpxord %%xmm19, %%xmm19, %%xmm19\n\tvpxord %%xmm20, %%xmm20, %%xmm20\n\tvpxord %%xmm21, %%xmm21, %%xmm21\n\t"
        "vpxord %%xmm22, %%xmm22, %%xmm22\n\tvpxord %%xmm23, %%xmm23, %%xmm23\n\tvpxord %%xmm24, %%xmm24, %%xmm24\n\t"
        "vpxord %%xmm25, %%xmm25, %%xmm25\n\tvpxord %%xmm26, %%xmm26, %%xmm26\n\tvpxord %%xmm27, %%xmm27, %%xmm27\n\t"
        "vpxord %%xmm28, %%xmm28, %%xmm28\n\tvpxord %%xmm29, %%xmm29, %%xmm29\n\tvpxord %%xmm30, %%xmm30, %%xmm30\n\t"
        "vpxord %%xmm31, %%xmm31, %%xmm31"
        :
        :
#if defined(__AVX512F__)
        : "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
          "xmm28", "xmm29", "xmm30", "xmm31"
#endif
    );
  }
#endif
}

// rcx and r8-r11: the caller-saved general registers that carry no argument of a switch.
__attribute__((always_inline)) inline void clear_scratch_general_registers() {
#if defined(__x86_64__)
  asm volatile("xorl %%ecx, %%ecx\n\txorl %%r8d, %%r8d\n\txorl %%r9d, %%r9d\n\txorl %%r10d, %%r10d\n\txorl %%r11d, %%r11d"
               :
               :
               : "rcx", "r8", "r9", "r10", "r11");
#endif
}

// rcx, r8-r11 and xmm0-15's low halves: what a switch clears (rax, rdx, rdi and rsi carry its
// arguments). Not the rest of the vector state, on the hot path of every switch: nothing puts it
// on a goroutine's stack (an M's signal handlers run on its alternate stack, and compiled code
// spills only the low halves, as a variadic prologue's movaps does).
__attribute__((always_inline)) inline void clear_scratch_registers() {
  clear_scratch_general_registers();
  clear_sse_registers();
}

// Every caller-saved register, the vector registers in full: after a stop or a wait that
// recorded none of them, and after a slow path's call returns. Where a thread runs on its own
// stack, signal frames land there (XSAVE: all of the vector state).
__attribute__((always_inline)) inline void clear_caller_saved_registers() {
#if defined(__x86_64__)
  asm volatile("xorl %%eax, %%eax\n\txorl %%edx, %%edx\n\txorl %%esi, %%esi\n\txorl %%edi, %%edi"
               :
               :
               : "rax", "rdx", "rsi", "rdi");
#endif
  clear_scratch_general_registers();
  clear_vector_registers();
}

}  // namespace gort::internal
