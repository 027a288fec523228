// Calls from goroutines into the C and C++ runtimes (split stacks only; empty otherwise).
//
// The gold linker gives every split-stack function that calls code built without split-stack
// (libc, libstdc++, libgcc_s) a prologue that asks for 1 MiB free (`__morestack_non_split`): on a
// goroutine's 8 KiB stack, a switch to a 1 MiB segment on every call, and a goroutine that waits
// inside such a function holds the segment while it waits (docs/scheduler.md). In C++ nearly
// every function is such a function, for a handful of callees the compiler and the standard
// headers put everywhere: operator new and delete, _Unwind_Resume (the cleanup pad of any
// function with a destructor to run calls it), memcpy, memmove, memset, memcmp and strlen (copies,
// comparisons, std::string; bcmp, which clang calls for equality), snprintf, and libstdc++'s
// throw helpers (the error paths of inline container and string code). gold decides by where
// the callee is defined when the program is linked; libgort, which comes before libstdc++ and
// libc on every link line (gort.pc), defines those as split-stack code, so a function that calls
// only them keeps its ordinary prologue.
// Each is defined to behave exactly as the library's own, and runs where it is safe:
//
//   - operator new and delete (every replaceable form), snprintf and vsnprintf call malloc,
//     posix_memalign, free and libc's vsnprintf on the M's own stack when called on a goroutine's
//     (on_system_stack, Go's systemstack: Go runs C code on g0), directly anywhere else (a
//     thread, an M's stack). The operators keep libstdc++'s behaviour: the new_handler loop,
//     std::bad_alloc, nullptr for the nothrow forms; the loop and the throw run on the caller's
//     stack, out of line (they get the 1 MiB prologue: only a failure takes a segment).
//   - memcpy, memmove, memset, memcmp, bcmp and strlen jump to libc's, on the caller's stack:
//     libc's are leaf functions that use a few words of stack at most, well within libgcc's
//     reserve below the guard (next item).
//   - _Unwind_Resume jumps to libgcc_s's, on the caller's stack. The cleanup pad that calls it
//     runs in a frame whose prologue checked for room, so libgcc's reserve below the guard
//     (0xe00 bytes, __morestack_make_guard) is left for the unwinder: the room libgcc's own
//     __morestack gives it when an exception leaves a segment (its cleanup pad resumes unwinding
//     on the old stack, above the same reserve). A whole throw and catch, unwinder included,
//     writes 1,936 bytes below the thrower's frame here (x86-64, glibc 2.36, libgcc 12); the
//     first one in a process 4,952, binding the unwinder's calls into libc lazily; that first
//     one is a `throw`, which runs on its own 1 MiB segment (below).
//   - std::__throw_length_error and its siblings throw what libstdc++'s throw, with the same
//     messages (untranslated: libstdc++ looks them up in its message catalog, which is English
//     unless a translation is installed). Each throws from its own frame, which gets the 1 MiB
//     prologue (__cxa_throw).
// A program that defines one of these itself, or preloads a library that does (an allocator),
// replaces gort's as it replaced libc's: the first definition in the process wins.
//
// Everything else keeps the 1 MiB prologue, `throw` included. Deliberately so for
// std::function: its call operator calls std::__throw_bad_function_call, which gort leaves to
// libstdc++, so that a function that calls a std::function gets the big segment: the target may
// be code built without split-stack (cpp-httplib hands the monitor's task queue such functions),
// and gold cannot see through the indirect call. Other indirect calls into such code (a virtual
// function or a function pointer from a library built without split-stack) are not seen either,
// and run on whatever the caller's stack has left: call them from a function that also calls a
// library function directly (docs/scheduler.md).
#include "runtime/core/splitstack.hpp"

#if GORT_SPLIT_STACK
#include <dlfcn.h>

#include <cstdarg>
#include <cstdlib>
#include <iterator>
#include <new>
#include <stdexcept>

#include "runtime/core/sysmem.hpp"
#include "runtime/sched/cxxcall.hpp"
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

// Runs fn(arg), a call into libc, on the M's stack when called on a goroutine's. A goroutine's
// stack is the only one with a guard above 0 that an M runs (the M's own, its signal stack and
// on_system_stack's calls run with 0); on_system_stack tells a goroutine from a thread of the
// program's.
inline void on_libc_stack(void (*fn)(void*) noexcept, void* arg) {
  if (split_guard() == 0) fn(arg);
  else on_system_stack(fn, arg);
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

// ---- forwarded to the next definition (libc's, libgcc_s's), on the caller's stack ------------
// Each entry point below is a jump through gort_libc_next[i], which the library's constructor
// fills in (dlsym RTLD_NEXT: the definition gort's stands in front of). A call that comes first
// (another library's constructor) finds the slot empty and resolves it on the way.
enum NextIndex { kUnwindResume, kMemcpy, kMemmove, kMemset, kMemcmp, kStrlen, kVsnprintf, kBcmp, kNextCount };
static_assert(std::size(kForwardedNames) == kNextCount && kForwardedNames[kVsnprintf] == "vsnprintf" &&
              kForwardedNames[kBcmp] == "bcmp");

}  // namespace gort::internal

extern "C" {
__attribute__((visibility("hidden"))) void* gort_libc_next[gort::internal::kNextCount];
__attribute__((visibility("hidden"))) void* gort_resolve_next(int index);
}

namespace gort::internal {
namespace {
void* find_next(int index) {
  // The names are NUL-terminated literals.
  const char* const name = kForwardedNames[index].data();
  void* f = index == kUnwindResume ? dlvsym(RTLD_NEXT, name, "GCC_3.0") : nullptr;
  if (!f) f = dlsym(RTLD_NEXT, name);
  if (!f) {  // gort loaded after the library (dlopen): ask the library itself, never gort again
    void* lib = dlopen(index == kUnwindResume ? "libgcc_s.so.1" : "libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (lib) f = dlsym(lib, name);
  }
  if (!f) fatal("%s: no definition after gort's (%s)", name, dlerror());
  return f;
}
__attribute__((constructor)) void resolve_next() {
  for (int i = 0; i < kNextCount; ++i) __atomic_store_n(&gort_libc_next[i], find_next(i), __ATOMIC_RELAXED);
}
}  // namespace
}  // namespace gort::internal

void* gort_resolve_next(int index) {
  void* f = gort::internal::find_next(index);
  __atomic_store_n(&gort_libc_next[index], f, __ATOMIC_RELAXED);
  return f;
}

// A jump, not a call: the callee sees the caller's frame and arguments as they were (the
// unwinder starts from the frame of the cleanup pad that called _Unwind_Resume). Only the
// first call, before the constructor ran, saves the argument registers around the resolution.
#define GORT_FORWARD(name, index)                 \
  "  .text\n"                                     \
  "  .p2align 4\n"                                \
  "  .globl " #name "\n"                          \
  "  .type " #name ", @function\n"                \
  #name ":\n"                                     \
  "  .cfi_startproc\n"                            \
  "  movq gort_libc_next+8*" #index "(%rip), %rax\n" \
  "  testq %rax, %rax\n"                          \
  "  jz 1f\n"                                     \
  "  jmpq *%rax\n"                                \
  "1:\n"                                          \
  "  pushq %rdi\n  .cfi_adjust_cfa_offset 8\n"    \
  "  pushq %rsi\n  .cfi_adjust_cfa_offset 8\n"    \
  "  pushq %rdx\n  .cfi_adjust_cfa_offset 8\n"    \
  "  pushq %rcx\n  .cfi_adjust_cfa_offset 8\n"    \
  "  pushq %r8\n  .cfi_adjust_cfa_offset 8\n"     \
  "  movl $" #index ", %edi\n"                    \
  "  callq gort_resolve_next\n"                   \
  "  popq %r8\n  .cfi_adjust_cfa_offset -8\n"     \
  "  popq %rcx\n  .cfi_adjust_cfa_offset -8\n"    \
  "  popq %rdx\n  .cfi_adjust_cfa_offset -8\n"    \
  "  popq %rsi\n  .cfi_adjust_cfa_offset -8\n"    \
  "  popq %rdi\n  .cfi_adjust_cfa_offset -8\n"    \
  "  jmpq *%rax\n"                                \
  "  .cfi_endproc\n"                              \
  "  .size " #name ", .-" #name "\n"

// The index numbers are NextIndex's.
asm(GORT_FORWARD(_Unwind_Resume, 0) GORT_FORWARD(memcpy, 1) GORT_FORWARD(memmove, 2) GORT_FORWARD(memset, 3)
        GORT_FORWARD(memcmp, 4) GORT_FORWARD(strlen, 5) GORT_FORWARD(bcmp, 7));
static_assert(gort::internal::kUnwindResume == 0 && gort::internal::kMemcpy == 1 && gort::internal::kMemmove == 2 &&
              gort::internal::kMemset == 3 && gort::internal::kMemcmp == 4 && gort::internal::kStrlen == 5 &&
              gort::internal::kBcmp == 7);

// ---- formatting, on the M's stack ----------------------------------------------------------

namespace gort::internal {
namespace {
struct FormatCall {
  char* buf;
  size_t size;
  const char* format;
  va_list args;
  int result;
};
[[gnu::noinline]] GORT_NO_SPLIT void libc_format(void* p) noexcept;
void libc_format(void* p) noexcept {
  auto* c = static_cast<FormatCall*>(p);
  void* next = __atomic_load_n(&gort_libc_next[kVsnprintf], __ATOMIC_RELAXED);
  if (!next) next = gort_resolve_next(kVsnprintf);
  c->result = reinterpret_cast<int (*)(char*, size_t, const char*, va_list)>(next)(c->buf, c->size, c->format, c->args);
}
int format(char* buf, size_t size, const char* fmt, va_list args) {
  FormatCall c{buf, size, fmt, {}, 0};
  va_copy(c.args, args);
  on_libc_stack(libc_format, &c);
  va_end(c.args);
  return c.result;
}
}  // namespace
}  // namespace gort::internal

// clang cannot give a variadic function the split-stack prologue: its variadic entry points are
// no_split_stack there, and only pass their arguments on, in a frame of a few words (gcc gives
// them the prologue, and refuses the attribute after the C library's declaration).
#if defined(__clang__)
#define GORT_NO_SPLIT_VARIADIC GORT_NO_SPLIT
#else
#define GORT_NO_SPLIT_VARIADIC
#endif

namespace gort::internal {
namespace {
[[noreturn, gnu::noinline]] void throw_out_of_range_formatted(const char* fmt, va_list args) {
  char what[512];
  format(what, sizeof what, fmt, args);
  throw std::out_of_range(what);
}
}  // namespace
}  // namespace gort::internal

extern "C" int vsnprintf(char* buf, size_t size, const char* fmt, va_list args) {
  return gort::internal::format(buf, size, fmt, args);
}
extern "C" GORT_NO_SPLIT_VARIADIC int snprintf(char* buf, size_t size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int n = gort::internal::format(buf, size, fmt, args);
  va_end(args);
  return n;
}

// ---- libstdc++'s throw helpers, which its inline code calls ----------------------------------
// The same exceptions with the same messages (untranslated: libstdc++ passes them through its
// message catalog, which is English unless a translation is installed). Each throws from its own
// frame, which gets the 1 MiB prologue (__cxa_throw): only a throw takes a segment.
namespace std {
void __throw_bad_alloc() { throw bad_alloc(); }
void __throw_bad_array_new_length() { throw bad_array_new_length(); }
void __throw_logic_error(const char* what) { throw logic_error(what); }
void __throw_invalid_argument(const char* what) { throw invalid_argument(what); }
void __throw_length_error(const char* what) { throw length_error(what); }
void __throw_out_of_range(const char* what) { throw out_of_range(what); }
// The formatting and the throw happen in a function of its own (GORT_NO_SPLIT_VARIADIC).
GORT_NO_SPLIT_VARIADIC void __throw_out_of_range_fmt(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  gort::internal::throw_out_of_range_formatted(fmt, args);
}
}  // namespace std

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
