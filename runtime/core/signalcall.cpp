#include "runtime/core/signalcall.hpp"

#include <signal.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>

#include "runtime/core/mem.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/splitstack.hpp"
#include "runtime/core/thread.hpp"

#if defined(__x86_64__)
// gort_injected_call: entered in place of the interrupted instruction, with rbx = fn and r12 =
// the copied frame (its ucontext; the kernel's rt_sigreturn reads the frame at rsp). Both are
// callee-saved, so they survive the calls. No frame of its own to unwind through: the unwinder
// stops here (rip undefined), which ends a goroutine dump's walk at the preemption.
extern "C" void gort_injected_call() noexcept;
extern "C" GORT_NO_SPLIT __attribute__((visibility("hidden"))) void gort_injected_call_return(ucontext_t* frame) noexcept;
asm(R"(
  .text
  .p2align 4
  .globl gort_injected_call
  .hidden gort_injected_call
  .type gort_injected_call, @function
gort_injected_call:
  .cfi_startproc
  .cfi_undefined rip
  andq $-16, %rsp
  callq *%rbx
  movq %r12, %rdi
  callq gort_injected_call_return
  movq %r12, %rsp
  movl $15, %eax
  syscall
  ud2
  .cfi_endproc
  .size gort_injected_call, .-gort_injected_call
)");

namespace {
// The kernel's struct ucontext: glibc's ucontext_t up to the kernel's 8-byte signal mask.
constexpr size_t kKernelUcontext = offsetof(ucontext_t, uc_sigmask) + 8;
constexpr size_t kSiginfo = 128;  // rt_sigreturn checks that a whole frame's siginfo fits
// errno travels in the siginfo's place, which rt_sigreturn does not read.
int* saved_errno(ucontext_t* frame) { return reinterpret_cast<int*>(reinterpret_cast<char*>(frame) + kKernelUcontext); }
}  // namespace

// On the thread that resumes the call (fn may have switched threads): the frame's alternate
// signal stack must be this thread's, or rt_sigreturn would install the interrupted thread's,
// and errno is set to what the interrupted code had. no_split_stack: __errno_location is libc
// (a split-stack caller would ask for a 1 MiB segment); it needs a few bytes of the room libgcc
// keeps below every guard.
extern "C" void gort_injected_call_return(ucontext_t* frame) noexcept {
  stack_t ss{};
  if (!gort::internal::current_signal_stack(&ss)) ss.ss_flags = SS_DISABLE;
  ss.ss_flags &= ~SS_ONSTACK;  // not on it now, whatever the interrupted thread was
  frame->uc_stack = ss;
  errno = *saved_errno(frame);
}
#endif

namespace gort::internal {

#if defined(__x86_64__)
namespace {
constexpr size_t kLegacyFpstate = 512;
constexpr size_t kMaxFpstate = 16 << 10;
// What fn's first frames may use below the trampoline before a split-stack prologue would grow
// the stack (the fixed-stack build: all of it).
constexpr uintptr_t kCallRoom = kSplitStacks ? 512 : 8192;
}  // namespace

bool inject_call(ucontext_t* uc, uintptr_t stack_limit, void (*fn)(), int interrupted_errno) {
  auto* fp = reinterpret_cast<const unsigned char*>(uc->uc_mcontext.fpregs);
  if (!fp || !stack_limit) return false;
  size_t fp_size = kLegacyFpstate;
  const auto* sw = reinterpret_cast<const _fpx_sw_bytes*>(fp + 464);  // fxsave's software bytes
  if (sw->magic1 == FP_XSTATE_MAGIC1) fp_size = sw->extended_size;     // XSAVE area + magic2
  if (fp_size < kLegacyFpstate || fp_size > kMaxFpstate) return false;

  uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  // [frame: ucontext, siginfo][vector state, 64-byte aligned for XRSTOR][red zone] sp
  uintptr_t fp_copy = (sp - kRedZone - fp_size) & ~uintptr_t{63};
  uintptr_t frame = (fp_copy - kSiginfo - kKernelUcontext) & ~uintptr_t{15};
  uintptr_t entry_sp = frame - 64;
  if (sp <= stack_limit || entry_sp < stack_limit + kCallRoom || entry_sp > sp) return false;

  mem_copy(reinterpret_cast<void*>(fp_copy), fp, fp_size);
  mem_copy(reinterpret_cast<void*>(frame), uc, kKernelUcontext);
  reinterpret_cast<ucontext_t*>(frame)->uc_mcontext.fpregs = reinterpret_cast<fpregset_t>(fp_copy);
  *saved_errno(reinterpret_cast<ucontext_t*>(frame)) = interrupted_errno;

  greg_t* regs = uc->uc_mcontext.gregs;
  regs[REG_RSP] = static_cast<greg_t>(entry_sp);
  regs[REG_RIP] = reinterpret_cast<greg_t>(&gort_injected_call);
  regs[REG_RBX] = reinterpret_cast<greg_t>(fn);
  regs[REG_R12] = static_cast<greg_t>(frame);
  return true;
}
#else
bool inject_call(ucontext_t*, uintptr_t, void (*)(), int) { return false; }
#endif

}  // namespace gort::internal
