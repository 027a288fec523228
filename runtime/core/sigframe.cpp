#include "runtime/core/sigframe.hpp"

#include <ucontext.h>

#include <cstddef>

namespace gort::internal {

uintptr_t interrupted_stack_pointer(const stack_t& alt, uintptr_t sp) {
  const auto lo = reinterpret_cast<uintptr_t>(alt.ss_sp);
  const uintptr_t hi = lo + alt.ss_size;
  // A candidate's fields up to the saved registers lie inside the stack.
  constexpr size_t kSpan = offsetof(ucontext_t, uc_mcontext) + sizeof(mcontext_t);
  constexpr uintptr_t kStep = alignof(ucontext_t);
  if (sp < lo || sp > hi || hi - lo < kSpan) return 0;
  for (uintptr_t p = (hi - kSpan) & ~(kStep - 1); p >= sp && p >= lo; p -= kStep) {
    const auto* uc = reinterpret_cast<const ucontext_t*>(p);
    if (uc->uc_stack.ss_sp != alt.ss_sp || uc->uc_stack.ss_size != alt.ss_size) continue;
    if ((uc->uc_stack.ss_flags & (SS_ONSTACK | SS_DISABLE)) != 0 || uc->uc_link != nullptr) continue;
#if defined(__x86_64__)
    const auto fp = reinterpret_cast<uintptr_t>(uc->uc_mcontext.fpregs);
    if (fp != 0 && (fp <= p || fp >= hi)) continue;
    const auto interrupted = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
    const auto interrupted = static_cast<uintptr_t>(uc->uc_mcontext.sp);
#else
#error "gort: unsupported architecture"
#endif
    if (interrupted >= lo && interrupted <= hi) continue;  // not the outermost delivery
    return interrupted;
  }
  return 0;
}

}  // namespace gort::internal
