// The registry of attached threads and how they stop (runtime/core/thread.cpp): what a stopped
// thread's record says about its stack, which the collector scans from.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "runtime/core/os.hpp"
#include "runtime/core/sigframe.hpp"
#include "runtime/core/thread.hpp"
#include "test_util.hpp"

namespace gi = gort::internal;

namespace {
std::atomic<int> g_handler_state{0};  // 1: inside the handler; 2: the handler may return

GORT_NO_SPLIT void hold_in_handler(int);
void hold_in_handler(int) {
  g_handler_state.store(1);
  while (g_handler_state.load() != 2) {
  }
}

void wait_for(const std::atomic<int>& v, int want) {
  while (v.load() != want) std::this_thread::sleep_for(std::chrono::microseconds(50));
}
}  // namespace

// Not under ThreadSanitizer: TSan holds the stop signal back while the thread runs a handler,
// and its builds stop a thread from its own frame, never inside an interrupted handler.
TEST_CASE("thread: a stop inside a program's handler on the alternate stack says so, and the next stop no longer does" *
          doctest::skip(gi::kThreadSanitizer)) {
  struct sigaction sa {}, old {};
  sa.sa_handler = hold_in_handler;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGUSR2, &sa, &old) == 0);
  g_handler_state = 0;

  std::vector<char> alt(256 << 10);
  const auto alt_hi = reinterpret_cast<uintptr_t>(alt.data()) + alt.size();
  std::atomic<gi::ThreadRecord*> record{nullptr};
  std::atomic<uint64_t> attach_id{0};
  std::atomic<int> step{0};  // 1: attached; 2: may block; 3: blocked; 4: may return
  std::thread t([&] {
    stack_t ss{};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    REQUIRE(sigaltstack(&ss, nullptr) == 0);
    gort::AttachThread attached;
    attach_id = gi::t_local.record->attach_id;
    record = gi::t_local.record;
    step = 1;
    wait_for(step, 2);
    gi::blocked_wait([&] {
      step = 3;
      wait_for(step, 4);
    });
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
  });
  wait_for(step, 1);

  // Stopped while the program's handler runs on the alternate stack: [stopped_sp, its top) holds
  // the handler's frames and the interrupted code's registers, and is scanned.
  REQUIRE(pthread_kill(t.native_handle(), SIGUSR2) == 0);
  wait_for(g_handler_state, 1);
  uintptr_t in_handler_hi = 0, in_handler_sp = 0, interrupted_sp = 0, stack_lo = 0, stack_hi = 0;
  CHECK(gi::stop_thread(record, attach_id, [&](gi::ThreadRecord* r) {
    in_handler_hi = r->interrupted_handler_hi;
    in_handler_sp = r->stopped_sp;
    interrupted_sp = r->interrupted_sp;
    stack_lo = r->stack_lo;
    stack_hi = r->stack_hi;
  }));
  CHECK(in_handler_hi == alt_hi);
  CHECK(in_handler_sp < alt_hi);
  CHECK(in_handler_sp > alt_hi - alt.size());
  // And where the code the handler interrupted had its stack pointer: on the thread's own stack,
  // from where the collector scans it (not the whole stack).
  CHECK(interrupted_sp > stack_lo);
  CHECK(interrupted_sp < stack_hi);
  g_handler_state = 2;

  // The handler returned; the thread now waits in blocked_wait, on its own stack. Nothing of
  // the earlier stop may remain: a stale top would have the collector scan from this stack up to
  // the alternate stack, across whatever lies between.
  step = 2;
  wait_for(step, 3);
  uintptr_t blocked_hi = 1, blocked_sp = 0, blocked_interrupted = 1;
  bool blocked_async = true;
  CHECK(gi::stop_thread(record, attach_id, [&](gi::ThreadRecord* r) {
    blocked_hi = r->interrupted_handler_hi;
    blocked_sp = r->stopped_sp;
    blocked_async = r->stopped_async;
    blocked_interrupted = r->interrupted_sp;
  }));
  CHECK(blocked_hi == 0);
  CHECK(blocked_interrupted == 0);
  CHECK_FALSE(blocked_async);
  CHECK((blocked_sp < alt_hi - alt.size() || blocked_sp > alt_hi));  // not on the alternate stack
  step = 4;
  t.join();
  sigaction(SIGUSR2, &old, nullptr);
}

namespace {
// What the kernel's frames say, compared with what the search finds, from handlers on an
// alternate stack: the outermost (interrupting the thread on its own stack) and one nested in it.
struct FrameSeen {
  uintptr_t kernel_sp = 0;  // the interrupted code's stack pointer, from the handler's ucontext
  uintptr_t found_sp = 0;   // interrupted_stack_pointer's answer
};
FrameSeen g_outer, g_nested;
stack_t g_alt{};

uintptr_t ucontext_sp(void* uctx) {
  auto* uc = static_cast<ucontext_t*>(uctx);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#else
  return static_cast<uintptr_t>(uc->uc_mcontext.sp);
#endif
}

GORT_NO_SPLIT void nested_handler(int, siginfo_t*, void* uctx);
void nested_handler(int, siginfo_t*, void* uctx) {
  g_nested.kernel_sp = ucontext_sp(uctx);  // the outer handler's, on the alternate stack
  g_nested.found_sp = gi::interrupted_stack_pointer(g_alt, gi::stack_pointer());
}
GORT_NO_SPLIT void outer_handler(int, siginfo_t*, void* uctx);
void outer_handler(int, siginfo_t*, void* uctx) {
  g_outer.kernel_sp = ucontext_sp(uctx);
  g_outer.found_sp = gi::interrupted_stack_pointer(g_alt, gi::stack_pointer());
  raise(SIGUSR1);  // delivered now, nested on the alternate stack
}
}  // namespace

// Not under ThreadSanitizer: TSan holds back a signal that arrives while a handler runs, so the
// nested handler never runs nested.
TEST_CASE("sigframe: a handler on the alternate stack finds the stack pointer of the code the outermost signal interrupted" *
          doctest::skip(gi::kThreadSanitizer)) {
  struct sigaction outer {}, nested {}, old_outer {}, old_nested {};
  outer.sa_sigaction = outer_handler;
  outer.sa_flags = SA_ONSTACK | SA_SIGINFO | SA_NODEFER;
  sigemptyset(&outer.sa_mask);
  nested = outer;
  nested.sa_sigaction = nested_handler;
  REQUIRE(sigaction(SIGUSR2, &outer, &old_outer) == 0);
  REQUIRE(sigaction(SIGUSR1, &nested, &old_nested) == 0);
  for (size_t size : {size_t{64} << 10, size_t{256} << 10}) {
    std::thread t([size] {
      std::vector<char> alt(size, '\x5a');  // not zero: the search must not depend on a clean stack
      g_alt = stack_t{};
      g_alt.ss_sp = alt.data();
      g_alt.ss_size = alt.size();
      REQUIRE(sigaltstack(&g_alt, nullptr) == 0);
      for (int round = 0; round < 3; ++round) {
        g_outer = g_nested = FrameSeen{};
        raise(SIGUSR2);
        const auto lo = reinterpret_cast<uintptr_t>(alt.data()), hi = lo + alt.size();
        CHECK(g_outer.kernel_sp != 0);
        CHECK_FALSE((g_outer.kernel_sp >= lo && g_outer.kernel_sp <= hi));  // the thread's own stack
        CHECK(g_outer.found_sp == g_outer.kernel_sp);
        CHECK((g_nested.kernel_sp >= lo && g_nested.kernel_sp <= hi));  // the outer handler's
        CHECK(g_nested.found_sp == g_outer.kernel_sp);                // still the outermost's
      }
      stack_t off{};
      off.ss_flags = SS_DISABLE;
      sigaltstack(&off, nullptr);
    });
    t.join();
  }
  sigaction(SIGUSR2, &old_outer, nullptr);
  sigaction(SIGUSR1, &old_nested, nullptr);
}

#if defined(__x86_64__)
namespace {
constexpr uintptr_t kHideKey = 0x5a5a5a5a5a5a5a5aull;

// A tree whose address is returned XOR kHideKey: no copy of the address itself outlives the call
// in the caller's registers or frame.
__attribute__((noinline)) uintptr_t make_hidden_tree(gort::Weak<gort_test::TreeNode>* weak, int64_t value) {
  gort_test::TreeNode* t = gort_test::build_tree(3, value);
  *weak = gort::Weak<gort_test::TreeNode>(t);
  return reinterpret_cast<uintptr_t>(t) ^ kHideKey;
}

// Unhides the address into a vector register only (the upper half of ymm15, or with AVX-512 the
// upper half of zmm16, a register the compiler does not know of without -mavx512f), with every
// other vector register and the caller-saved general ones cleared, says so through `ready`,
// spins without touching that register until `release` is set, and returns the address read
// back from it.
// The part both variants share: the caller-saved general registers cleared, `ready` set, the
// spin until `release`; the operands and clobbers of both.
#define GORT_TEST_CLEAR_AND_SPIN                                                                      \
  "xorl %k[h], %k[h]\n\t"                                                                            \
  "xorl %%ecx, %%ecx\n\t xorl %%edx, %%edx\n\t xorl %%esi, %%esi\n\t xorl %%edi, %%edi\n\t"             \
  "xorl %%r8d, %%r8d\n\t xorl %%r9d, %%r9d\n\t xorl %%r10d, %%r10d\n\t xorl %%r11d, %%r11d\n\t"        \
  "movl $1, (%[ready])\n\t"                                                                          \
  "1: pause\n\t"                                                                                     \
  "cmpl $0, (%[release])\n\t"                                                                        \
  "je 1b\n\t"
#define GORT_TEST_OPERANDS                                                                            \
  : [h] "+a"(hidden)                                                                                 \
  : [key] "r"(kHideKey), [ready] "r"(ready), [release] "r"(release)                                  \
  : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", \
    "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc"
__attribute__((noinline)) uintptr_t hold_in_vector_register(uintptr_t hidden, bool avx512, std::atomic<int>* ready,
                                                           const std::atomic<int>* release) {
  if (avx512) {
    asm volatile(
        "vzeroall\n\t"
        "vpxorq %%zmm16, %%zmm16, %%zmm16\n\t"
        "xorq %[key], %[h]\n\t"
        "vmovq %[h], %%xmm1\n\t"
        "vinserti64x4 $1, %%ymm1, %%zmm16, %%zmm16\n\t"  // zmm16's fifth quadword; the rest is 0
        "vzeroall\n\t" GORT_TEST_CLEAR_AND_SPIN
        "vextracti64x4 $1, %%zmm16, %%ymm1\n\t"
        "vmovq %%xmm1, %[h]\n\t"
        "vpxorq %%zmm16, %%zmm16, %%zmm16\n\t"
        "vzeroupper" GORT_TEST_OPERANDS);
  } else {
    asm volatile(
        "vzeroall\n\t"
        "xorq %[key], %[h]\n\t"
        "vmovq %[h], %%xmm1\n\t"
        "vinserti128 $1, %%xmm1, %%ymm15, %%ymm15\n\t"  // ymm15's upper half; its lower half is 0
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t" GORT_TEST_CLEAR_AND_SPIN
        "vextracti128 $1, %%ymm15, %%xmm1\n\t"
        "vmovq %%xmm1, %[h]\n\t"
        "vzeroupper" GORT_TEST_OPERANDS);
  }
  return hidden;
}
#undef GORT_TEST_CLEAR_AND_SPIN
#undef GORT_TEST_OPERANDS
}  // namespace

// A stopped thread's vector registers are scanned whole (the kernel's XSAVE image): code built
// with AVX may keep a pointer only in the upper half of a YMM register, AVX-512 code in a ZMM
// register's upper bits or in zmm16-31. Collections run while an attached thread holds the only
// reference to a tree there; the tree must survive them. Not under ThreadSanitizer, whose builds
// stop a thread only at its next intercepted call (this one spins in assembly).
TEST_CASE("thread: an object referenced only from the upper half of a vector register survives collections" *
          doctest::skip(gi::kThreadSanitizer || !__builtin_cpu_supports("avx2"))) {
  // No collection but the test's own: one that scanned the thread between make_hidden_tree's
  // return and the unhiding (a moment when nothing references the tree) would free it.
  gort::GC();
  int gogc = gort::debug::SetGCPercent(-1);
  for (bool avx512 : {false, true}) {
    if (avx512 && !__builtin_cpu_supports("avx512f")) continue;
    CAPTURE(avx512);
    std::atomic<int> ready{0}, release{0};
    bool alive = false, intact = false;
    std::thread t([&] {
      gort::AttachThread attached;
      gort::Weak<gort_test::TreeNode> weak;
      uintptr_t hidden = make_hidden_tree(&weak, 42);
      gi::scrub_stack();  // make_hidden_tree's dead frame, in the red zone the scan covers
      auto* tree = reinterpret_cast<gort_test::TreeNode*>(hold_in_vector_register(hidden, avx512, &ready, &release));
      alive = weak.get() == tree;
      intact = alive && gort_test::check_tree(tree, 3, 42);
    });
    wait_for(ready, 1);
    for (int i = 0; i < 3; ++i) gort::GC();
    release = 1;
    t.join();
    CHECK(alive);
    CHECK(intact);
  }
  gort::debug::SetGCPercent(gogc);
}
namespace {
// The parts of the vector registers that only AVX and AVX-512 code writes, and glibc's string
// functions use: ymm15's upper half, and (AVX-512) zmm16. Code built for the x86-64 baseline
// never touches them (legacy SSE instructions keep the upper halves), so what is planted there
// stays until an AVX instruction or a call into glibc's string functions overwrites it.
__attribute__((noinline)) void plant_in_vector_registers(uint64_t word, bool avx512) {
  asm volatile(
      "vmovq %[w], %%xmm1\n\t"
      "vinsertf128 $1, %%xmm1, %%ymm15, %%ymm15\n\t"
      "vpxor %%xmm1, %%xmm1, %%xmm1"
      :
      : [w] "r"(word)
      : "xmm1", "xmm15");
  if (avx512) asm volatile("vmovq %[w], %%xmm16" : : [w] "r"(word));
}
__attribute__((noinline)) uint64_t ymm15_upper_half() {
  uint64_t w;
  asm volatile("vextractf128 $1, %%ymm15, %%xmm1\n\tvmovq %%xmm1, %[w]" : [w] "=r"(w) : : "xmm1");
  return w;
}
__attribute__((noinline)) uint64_t zmm16_low_word() {
  uint64_t w;
  asm volatile("vmovq %%xmm16, %[w]" : [w] "=r"(w));
  return w;
}
}  // namespace

// A wait that records no registers (a scan meanwhile reads the thread's stack from where the
// wait began) must leave none of them as they were: a stale pointer still held there would outlive
// the scan unseen, and a later signal frame saves every register on the stack (XSAVE), where a
// frame's unwritten slots can show it to the checking mark. The clears once reached only the low
// 128 bits of xmm0-15 (legacy pxor): this found the planted word still in both places after the
// wait.
TEST_CASE("thread: blocked_wait leaves no vector register as it found it, the AVX and AVX-512 parts included" *
          doctest::skip(!__builtin_cpu_supports("avx"))) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  constexpr uint64_t kPlanted = 0xc0ffee0000c0ffeeull;
  uint64_t upper_before = 0, upper_after = 0, zmm16_before = 0, zmm16_after = 0;
  std::thread t([&] {
    gort::AttachThread attached;
    plant_in_vector_registers(kPlanted, avx512);
    upper_before = ymm15_upper_half();
    if (avx512) zmm16_before = zmm16_low_word();
    plant_in_vector_registers(kPlanted, avx512);
    gi::blocked_wait([] {});
    upper_after = ymm15_upper_half();
    if (avx512) zmm16_after = zmm16_low_word();
  });
  t.join();
  CAPTURE(avx512);
  CHECK(upper_before == kPlanted);  // the planting works: nothing between clears them
  CHECK(upper_after == 0);
  if (avx512) {
    CHECK(zmm16_before == kPlanted);
    CHECK(zmm16_after == 0);
  }
}
#endif
