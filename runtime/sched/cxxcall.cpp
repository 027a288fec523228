// Calls from goroutines into the C++ runtime (split stacks only; this file is empty otherwise).
//
// The gold linker gives every split-stack function that calls code built without split-stack
// (libc, libstdc++, libgcc_s) a prologue that asks for 1 MiB free (`__morestack_non_split`): on a
// goroutine's 8 KiB stack, a switch to a 1 MiB segment on every call, and a goroutine that waits
// inside such a function holds the segment while it waits (docs/scheduler.md). In C++ nearly every
// function is such a function, for three callees: `operator new`, `operator delete`, and
// `_Unwind_Resume`, which the cleanup pad of any function with a destructor to run calls. gold
// decides by where the callee is defined when the program is linked; libgort, which comes before
// libstdc++ and libgcc_s on every link line (gort.pc), defines all three, split-stack, so the
// program's functions that call only these keep their ordinary prologue. What each one does:
//
//   - operator new and delete (every replaceable form) call malloc, posix_memalign and free on
//     the M's own stack when called on a goroutine's (on_system_stack, Go's systemstack: as Go
//     runs C code on g0), directly anywhere else (a thread, an M's stack, a signal handler's).
//     Their behaviour is libstdc++'s: the new_handler loop, std::bad_alloc, nullptr for the
//     nothrow forms. The loop and the throw run on the goroutine's stack, out of line (the
//     exception unwinds the goroutine's frames; that path gets its 1 MiB segment as before).
//     A program that defines its own operator new, or preloads an allocator, replaces these as
//     it replaced libstdc++'s: the first definition in the process wins.
//   - _Unwind_Resume jumps to libgcc_s's, unchanged, on the stack it was called on. The cleanup
//     pad that calls it runs in a frame whose prologue checked for room, so at least libgcc's
//     reserve below the guard (0xe00 bytes, __morestack_make_guard) is left for the unwinder:
//     the same room libgcc's own __morestack gives it when an exception leaves a segment (its
//     cleanup resumes unwinding on the old stack, above the same reserve).
//
// Exceptions themselves (`throw`: __cxa_allocate_exception, __cxa_throw) and every other library
// call keep the 1 MiB prologue: only these three are on ordinary code's common paths.
#include "runtime/core/splitstack.hpp"

#if GORT_SPLIT_STACK
#include <dlfcn.h>

#include <cstdlib>
#include <new>

#include "runtime/core/sysmem.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::internal {
namespace {

struct LibcCall {
  size_t size;
  size_t align;  // 0: malloc
  void* ptr;     // in: what free frees; out: what malloc returned
};

// On the M's stack (guard 0): libc never asks for more.
// Never inlined: a direct call to libc in the operators would give them the 1 MiB prologue.
[[gnu::noinline]] GORT_NO_SPLIT void libc_allocate(void* p) noexcept;
void libc_allocate(void* p) noexcept {
  auto* c = static_cast<LibcCall*>(p);
  if (c->align == 0) {
    c->ptr = std::malloc(c->size);
  } else if (posix_memalign(&c->ptr, c->align < sizeof(void*) ? sizeof(void*) : c->align, c->size) != 0) {
    c->ptr = nullptr;
  }
}
[[gnu::noinline]] GORT_NO_SPLIT void libc_free(void* p) noexcept;
void libc_free(void* p) noexcept { std::free(static_cast<LibcCall*>(p)->ptr); }

// A goroutine's stack is the only one with a guard above 0 that an M runs (the M's own, its
// signal stack and on_system_stack's calls run with 0); on_system_stack tells a goroutine from a
// thread of the program's.
inline void on_libc_stack(void (*fn)(void*) noexcept, LibcCall* c) {
  if (split_guard() == 0) fn(c);
  else on_system_stack(fn, c);
}

inline void* try_allocate(size_t size, size_t align) {
  LibcCall c{size == 0 ? 1 : size, align, nullptr};
  on_libc_stack(libc_allocate, &c);
  return c.ptr;
}

// libstdc++'s loop: ask the new_handler for memory until there is some; none installed: bad_alloc.
// On the caller's stack: the handler may throw.
[[gnu::noinline, gnu::cold]] void* allocate_slow(size_t size, size_t align) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (!handler) throw std::bad_alloc();
    handler();
    if (void* p = try_allocate(size, align)) return p;
  }
}
[[gnu::noinline, gnu::cold]] void* allocate_slow_nothrow(size_t size, size_t align) noexcept {
  try {
    return allocate_slow(size, align);
  } catch (...) {
    return nullptr;
  }
}

inline void* allocate(size_t size, size_t align) {
  if (void* p = try_allocate(size, align)) [[likely]] return p;
  return allocate_slow(size, align);
}
inline void* allocate_nothrow(size_t size, size_t align) noexcept {
  if (void* p = try_allocate(size, align)) [[likely]] return p;
  return allocate_slow_nothrow(size, align);
}
inline void release(void* p) noexcept {
  if (!p) return;
  LibcCall c{0, 0, p};
  on_libc_stack(libc_free, &c);
}

}  // namespace

// libgcc_s's _Unwind_Resume, found once the library is loaded (and by the first call, should an
// exception be resumed before that).
extern "C" {
__attribute__((visibility("hidden"))) void* gort_libgcc_unwind_resume = nullptr;
}

namespace {
void* find_libgcc_unwind_resume() {
  void* f = dlvsym(RTLD_NEXT, "_Unwind_Resume", "GCC_3.0");
  if (!f) f = dlsym(RTLD_NEXT, "_Unwind_Resume");
  if (!f) fatal("libgcc_s's _Unwind_Resume not found (%s)", dlerror());
  return f;
}
__attribute__((constructor)) void resolve_unwind_resume() {
  gort_libgcc_unwind_resume = find_libgcc_unwind_resume();
}
}  // namespace

extern "C" __attribute__((visibility("hidden"), noreturn)) void gort_unwind_resume_first(void* exception);
extern "C" void gort_unwind_resume_first(void* exception) {
  gort_libgcc_unwind_resume = find_libgcc_unwind_resume();
  reinterpret_cast<void (*)(void*)>(gort_libgcc_unwind_resume)(exception);
  __builtin_unreachable();
}

}  // namespace gort::internal

// A jump, not a call: the unwinder starts from the frame of the cleanup pad that called it.
asm(R"(
  .text
  .p2align 4
  .globl _Unwind_Resume
  .type _Unwind_Resume, @function
_Unwind_Resume:
  .cfi_startproc
  movq gort_libgcc_unwind_resume(%rip), %rax
  testq %rax, %rax
  jz 1f
  jmpq *%rax
1:
  jmp gort_unwind_resume_first
  .cfi_endproc
  .size _Unwind_Resume, .-_Unwind_Resume
)");

using gort::internal::allocate;
using gort::internal::allocate_nothrow;
using gort::internal::release;

void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate_nothrow(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate_nothrow(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, static_cast<size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, static_cast<size_t>(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, static_cast<size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, static_cast<size_t>(a));
}

void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
#endif
