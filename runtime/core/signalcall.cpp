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
// callee-saved, so they survive the calls. Its call frame information describes a signal frame
// whose caller is the interrupted code, with the registers the copy holds (DWARF expressions on
// r12: the CFA is the saved rsp, rip and the callee-saved registers are read from gregs), so an
// unwinder started in fn (a goroutine dump of a preempted goroutine) continues into the code
// that was interrupted. Offsets: uc_mcontext.gregs is at 40; REG_R12..R15 = 4..7, REG_RBP = 10,
// REG_RBX = 11, REG_RSP = 15, REG_RIP = 16 (8 bytes each).
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
  .cfi_signal_frame
  .cfi_escape 0x0f, 0x04, 0x7c, 0xa0, 0x01, 0x06
  .cfi_escape 0x10, 0x10, 0x03, 0x7c, 0xa8, 0x01
  .cfi_escape 0x10, 0x06, 0x03, 0x7c, 0xf8, 0x00
  .cfi_escape 0x10, 0x03, 0x03, 0x7c, 0x80, 0x01
  .cfi_escape 0x10, 0x0c, 0x03, 0x7c, 0xc8, 0x00
  .cfi_escape 0x10, 0x0d, 0x03, 0x7c, 0xd0, 0x00
  .cfi_escape 0x10, 0x0e, 0x03, 0x7c, 0xd8, 0x00
  .cfi_escape 0x10, 0x0f, 0x03, 0x7c, 0xe0, 0x00
  andq $-16, %rsp
  movq %r12, %rdi
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
static_assert(offsetof(ucontext_t, uc_mcontext.gregs) == 40, "gort_injected_call's unwind information");
static_assert(REG_R12 == 4 && REG_RBP == 10 && REG_RBX == 11 && REG_RSP == 15 && REG_RIP == 16);
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

size_t signal_frame_vector_bytes(const void* fpregs) {
  if (!fpregs) return 0;
  size_t size = kLegacyFpstate;
  auto* fp = static_cast<const unsigned char*>(fpregs);
  const auto* sw = reinterpret_cast<const _fpx_sw_bytes*>(fp + 464);  // fxsave's software bytes
  if (sw->magic1 == FP_XSTATE_MAGIC1) size = sw->extended_size;      // XSAVE area + magic2
  return size >= kLegacyFpstate && size <= kMaxFpstate ? size : 0;
}

void* inject_call(ucontext_t* uc, uintptr_t stack_limit, void (*fn)(void*), int interrupted_errno) {
  auto* fp = reinterpret_cast<const unsigned char*>(uc->uc_mcontext.fpregs);
  size_t fp_size = signal_frame_vector_bytes(fp);
  if (!fp_size || !stack_limit) return nullptr;

  uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  // [frame: ucontext, siginfo][vector state, 64-byte aligned for XRSTOR][red zone] sp
  uintptr_t fp_copy = (sp - kRedZone - fp_size) & ~uintptr_t{63};
  uintptr_t frame = (fp_copy - kSiginfo - kKernelUcontext) & ~uintptr_t{15};
  uintptr_t entry_sp = frame - 64;
  if (sp <= stack_limit || entry_sp < stack_limit + kCallRoom || entry_sp > sp) return nullptr;

  mem_copy(reinterpret_cast<void*>(fp_copy), fp, fp_size);
  mem_copy(reinterpret_cast<void*>(frame), uc, kKernelUcontext);
  reinterpret_cast<ucontext_t*>(frame)->uc_mcontext.fpregs = reinterpret_cast<fpregset_t>(fp_copy);
  *saved_errno(reinterpret_cast<ucontext_t*>(frame)) = interrupted_errno;

  greg_t* regs = uc->uc_mcontext.gregs;
  regs[REG_RSP] = static_cast<greg_t>(entry_sp);
  regs[REG_RIP] = reinterpret_cast<greg_t>(&gort_injected_call);
  regs[REG_RBX] = reinterpret_cast<greg_t>(fn);
  regs[REG_R12] = static_cast<greg_t>(frame);
  return reinterpret_cast<void*>(frame);
}

void injected_frame_range(const void* frame, uintptr_t* lo, uintptr_t* hi) {
  *lo = reinterpret_cast<uintptr_t>(frame);
  *hi = static_cast<uintptr_t>(static_cast<const ucontext_t*>(frame)->uc_mcontext.gregs[REG_RSP]);
}
#else
size_t signal_frame_vector_bytes(const void*) { return 0; }
void* inject_call(ucontext_t*, uintptr_t, void (*)(void*), int) { return nullptr; }
void injected_frame_range(const void*, uintptr_t* lo, uintptr_t* hi) { *lo = *hi = 0; }
#endif

}  // namespace gort::internal
