// Goroutine stacks (Go's stack.go), in one of two builds chosen by meson's -Dstacks option.
//
// split (the default): segmented stacks, through the compiler's split-stack support.
//   A goroutine starts on a kStackSize (8 KiB) stack carved out of 1 MiB chunks, with no guard
//   page. Every function compiled with -fsplit-stack compares, in its prologue, the stack pointer
//   minus its frame with a guard word in the thread control block (%fs:0x70 on x86-64); when the
//   frame would not fit it calls libgcc's __morestack, which maps a new segment (at least
//   libgcc's minimum, 48 KiB here, or frame + 1 MiB for a function that calls code built without
//   split-stack, which the gold linker redirects to __morestack_non_split), runs the function
//   there and pops back when it returns. Popped segments stay linked for the next growth; so deep recursion works on any
//   goroutine, and a goroutine that never grows holds its 8 KiB.
//
//   libgcc keeps a thread's split-stack state (segment list, current segment, guard, initial
//   stack) in thread-locals; __splitstack_getcontext/setcontext save and restore it as the ten
//   words of a StackContext. Each goroutine has one, swapped with every fcontext switch (inline:
//   stack_context_save_running/install), in no_split_stack functions, immediately before the jump (between the two no prologue may run:
//   it would compare one stack's pointer with the other's guard). gort's first stack is described
//   to libgcc as the context's "initial stack" (no segment in use), the way a thread's system
//   stack is: libgcc only ever maps the extra segments.
//
//   Invariants:
//   - A Stack (first stack + its segment list) belongs to one goroutine or to a pool. A pooled
//     first stack has no segment: a goroutine's spares go to the segment pool (segments.hpp)
//     whenever it switches out on its first stack, its last switch included.
//   - StackInuse counts the first stacks carved so far (in use or pooled, as Go counts its stack
//     spans) and the segments goroutines hold, noted when a goroutine switches out (or calls
//     ReadMemStats); the rest of the last chunk, mapped but never used, and the pool's idle
//     segments are StackSys only.
//   - gort's own threads (Ms, service threads) run with the guard at 0: their code never asks for
//     a segment, they have plenty of fixed stack. The runtime's slow paths run there when called
//     on a goroutine (on_system_stack, sched/proc.hpp). Signal handlers that run on an M's alternate
//     signal stack set the guard to 0 while they run, since the alternate stack is not the
//     goroutine's. Goroutine contexts do not block signals around __morestack (libgcc's default
//     costs two system calls per call): handlers never grow a goroutine's stack.
//   - Other attached threads (the user's) keep libgcc's defaults and may run on segments too; the
//     collector walks every stack the same way (for_each_stack_range).
//
// fixed (-Dstacks=fixed): each goroutine gets a 64 KiB stack with a PROT_NONE guard page below it,
//   so an overflow faults (and is reported) instead of corrupting memory; for platforms and
//   sanitizers without split-stack. Each stack is two memory mappings, so the kernel's
//   vm.max_map_count bounds the number of goroutines (about 32,000).
//
// In both builds stacks of finished goroutines are pooled: spawning costs no system call once the
// pool is warm.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "runtime/core/sanitizer.hpp"
#include "runtime/core/splitstack.hpp"

namespace gort::internal {

#if GORT_SPLIT_STACK
constexpr size_t kStackSize = 8 << 10;
#else
// Sanitizer builds (fixed stacks only) give every frame redzones: their goroutines get 256 KiB.
constexpr size_t kStackSize = kSanitized ? 256 << 10 : 64 << 10;
#endif

struct Stack {
  uintptr_t lo = 0, hi = 0;    // the first stack [lo, hi)
  void* segments = nullptr;    // split: libgcc's segments grown from it (kept for reuse)
  uint64_t segment_bytes = 0;  // split: the bytes of them counted in StackInuse (last noted)
  uint64_t lent_bytes = 0;     // split: a segment lent by the pool, still counted idle (segments.hpp)
};

// libgcc's split-stack context of a goroutine; empty with fixed stacks.
struct StackContext {
#if GORT_SPLIT_STACK
  void* words[10] = {};
  void* segments() const { return words[0]; }  // the list (libgcc's MORESTACK_SEGMENTS)
  void* current() const { return words[1]; }   // the segment in use, null on the first stack
#else
  void* segments() const { return nullptr; }
  void* current() const { return nullptr; }
#endif
};

#if GORT_SPLIT_STACK
// The switch's halves, as __splitstack_getcontext/setcontext but inline (they run between the
// swap and the jump, in no_split_stack code, on every switch). A goroutine's initial-stack words
// never change while it runs, so leaving one saves only what __morestack moves.
__attribute__((always_inline, no_split_stack)) inline void stack_context_save_running(StackContext& c);
__attribute__((always_inline, no_split_stack)) inline void stack_context_install(const StackContext& c);
inline void stack_context_save_running(StackContext& c) {
  c.words[0] = __morestack_segments;
  c.words[1] = __morestack_current_segment;
  c.words[3] = reinterpret_cast<void*>(split_guard());
}
inline void stack_context_install(const StackContext& c) {
  __morestack_segments = c.words[0];
  __morestack_current_segment = c.words[1];
  set_split_guard(reinterpret_cast<uintptr_t>(c.words[3]));
  __morestack_initial_sp.sp = c.words[4];
  __morestack_initial_sp.len = reinterpret_cast<size_t>(c.words[5]);
  __morestack_initial_sp.dont_block_signals = reinterpret_cast<uintptr_t>(c.words[6]);
}
#endif

Stack stack_alloc();
// To the global pool (split: releasing any segment it still has).
void stack_free(Stack s);
// Checks what the split-stack code relies on in libgcc (once, at scheduler start).
void stack_init();

// A context that starts g's run on s: s is the initial stack, s.segments its spare segments.
void stack_context_init(StackContext& c, const Stack& s);

// Notes the segment list a goroutine's context holds now (after it switched out, or while the
// world is stopped), moving StackInuse by what was mapped or released since the last note.
void stack_note_segments_slow(Stack& s, void* segments);
inline void stack_note_segments(Stack& s, void* segments) {
  if (segments || s.segments) stack_note_segments_slow(s, segments);
}
// The segments a goroutine holds, noted in StackInuse: the lent one moves there from StackSys.
void segments_note_lent(Stack& s);

// A goroutine's segments were mapped or released (delta < 0), or moved to or from the idle pool
// (segments.hpp): StackInuse and the segment total move together.
void stack_count_segments(int64_t delta);

// How far below a stack pointer checkmark's scrubs zero: the depth of dead frames a program is
// likely to reuse before the next cycle, not whole 1 MiB segments.
constexpr size_t kScrubDepth = 64 << 10;

// What StackInuse holds: first stacks (in use or pooled) and segments grown from them (split).
uint64_t stack_first_bytes();
uint64_t stack_segment_bytes();
// The bytes of a segment list (as a context's segments() gives it); the list must be at rest.
uint64_t stack_list_bytes(void* segments);

// The calling thread's segment list and the segment in use (libgcc's), for a stopped thread's
// record. Inline, reading the thread-locals: a call (to this or to __splitstack_getcontext)
// could itself move to another segment, and then describe a stack other than the caller's.
__attribute__((always_inline)) inline void stack_current_segments(void** segments, void** current) {
#if GORT_SPLIT_STACK
  *segments = __morestack_segments;
  *current = __morestack_current_segment;
#else
  *segments = *current = nullptr;
#endif
}

// Go's limit on one goroutine's stack (runtime/debug.SetMaxStack's default on 64-bit systems).
constexpr uint64_t kMaxStackBytes = 1000000000;
// Where the calling thread keeps the segment in use (libgcc's thread-local), so that another
// thread can watch the depth of the goroutines it runs; null with fixed stacks.
void* const* stack_current_segment_slot();
// The bytes of the segments from `current` back to the first, read from another thread while
// the owner runs: every read is checked (a segment may be unmapped meanwhile; the answer is then
// a lower bound). Stops counting past `limit`.
uint64_t stack_depth_bytes(void* current, uint64_t limit);

// Calls visit(lo, hi) for every live range of a stack: the first stack [lo, hi) and the
// segments grown from it, `current` the segment in use (null: the first stack). sp is the stack
// pointer exactly as the stopped code left it; `below` more bytes under it may hold live data (the
// ABI's red zone, for a thread stopped at an arbitrary instruction; 0 after a switch). The thread
// that owns the stack is stopped, possibly inside __morestack: the walk follows only links that
// libgcc keeps valid there (stack.cpp's opening comment). A stack pointer found nowhere gets
// every range visited whole: conservative, never missing.
// `skip_morestack_saves`: leave out, on each older stack, the registers __morestack saved there
// (kMorestackSaves); only for a stack whose owner cannot be inside __morestack (checkmark).
template <class Visit>
void for_each_stack_range(uintptr_t sp, uintptr_t below, uintptr_t lo, uintptr_t hi, void* segments, void* current,
                          Visit&& visit, bool skip_morestack_saves = false);

// Where an older stack's live part begins, libgcc's __splitstack_find puts the twelve words
// __morestack pushed when it left that stack: r11, r9, r8, rcx, rdx, rsi, rdi, rax and r10 (the
// arguments of the function it went on to call, and scratch), then its frame pointer and two
// return addresses. The nine registers are read back once, before that call; from then on they
// are dead, but whatever the caller-saved ones held is there: a pointer the goroutine's code
// left in r9 before calling a function with four arguments, long dead, stays in a live frame
// for as long as the call runs on the newer stack. libgcc counts them live for a thread stopped
// inside __morestack's own instructions, where they are the only copy of the arguments; under
// checkmark no goroutine is stopped there (signals are blocked inside __morestack, stack.cpp),
// so the checking mark leaves them out, as the words it may skip (docs/gc.md, "Checking").
constexpr uintptr_t kMorestackPushed = 12 * sizeof(void*);
constexpr uintptr_t kMorestackSaves = 9 * sizeof(void*);
// The same frame on the stack sp is on, when the thread is in __morestack's return path (the
// signal that stops it is delivered as __morestack unblocks signals, on the way back): the
// block of its saved argument registers that the return values have not overwritten, from the
// start of the twelve words; 0 unless the segment just left records such a frame between `from`
// and the end of the stack sp is on (`at`, as stack_locate found it; `hi`: the first stack's end;
// `segments`, `current`: libgcc's list and segment in use, as the walk has them). A spare's
// record may be stale: then the block skipped is some other frame's, which only makes the
// checking mark see less.
struct StackLocation;
uintptr_t morestack_returning_saves(const StackLocation& at, uintptr_t from, uintptr_t hi, void* segments,
                                    void* current);
constexpr uintptr_t kMorestackReturningSaves = 6 * sizeof(void*);  // r11, r9, r8, rcx, rdx, rsi

// Zeroes the dead part of a stopped stack: below sp (less the red zone) on the stack sp is on,
// below the live part of each older stack the walk continues on, and, with `spares`, the top of every spare segment after it (only for a stack whose spares hold
// still: a switched-out goroutine, or one stopped outside __morestack); 64 KiB of each at most.
// GODEBUG=gccheckmark=1 does it after each scan, so that the checking mark, which scans stacks
// later, does not take stale words from dead frames for live pointers.
void stack_zero_dead(uintptr_t sp, uintptr_t below, uintptr_t lo, uintptr_t hi, void* segments, void* current,
                     bool spares);
// Zeroes a stack about to be given to a new goroutine (GODEBUG=gccheckmark=1): the first stack
// and the top 64 KiB of each spare segment it keeps.
void stack_scrub_all(const Stack& s);

// ---- implementation of the walk ----------------------------------------------------------------

// Which stack sp is on: the first stack (kFirstStack), a segment, or none (nullptr); `base` is
// the lowest address that stack lets frames use.
inline void* const kFirstStack = reinterpret_cast<void*>(uintptr_t{1});
struct StackLocation {
  void* stack;
  uintptr_t base;
};
StackLocation stack_locate(uintptr_t sp, uintptr_t lo, uintptr_t hi, void* segments, void* current);
// The segments from `current` back to the first, whole.
void stack_segment_ranges(void* current, void (*visit)(void*, uintptr_t, uintptr_t), void* arg);

template <class Visit>
void for_each_stack_range(uintptr_t sp, uintptr_t below, uintptr_t lo, uintptr_t hi, void* segments, void* current,
                          Visit&& visit, [[maybe_unused]] bool skip_morestack_saves) {
  StackLocation at = stack_locate(sp, lo, hi, segments, current);
  if (!at.stack) {
    visit(lo, hi);
    using V = std::remove_reference_t<Visit>;
    stack_segment_ranges(current, [](void* v, uintptr_t a, uintptr_t b) { (*static_cast<V*>(v))(a, b); }, &visit);
    return;
  }
  // The red zone lies on the stack sp is on, never past its start.
  uintptr_t from = sp - at.base > below ? sp - below : at.base;
#if GORT_SPLIT_STACK
  if (skip_morestack_saves) {  // the stack sp is on, in two parts around the dead saves
    if (uintptr_t saves = morestack_returning_saves(at, from, hi, segments, current)) {
      visit(from, saves);
      from = saves + kMorestackReturningSaves;
    }
  }
#endif
  if (at.stack == kFirstStack) {  // on the first stack: everything live is there
    visit(from, hi);
    return;
  }
#if GORT_SPLIT_STACK
  // From the segment holding sp back to the first stack, as libgcc's __splitstack_find walks it:
  // each segment records where the previous one was left (its old_stack).
  void* seg = at.stack;
  void* cursor = reinterpret_cast<void*>(from);
  while (seg != kFirstStack) {
    size_t len = 0;
    void *next_seg = nullptr, *next_sp = nullptr, *initial = reinterpret_cast<void*>(hi);
    void* base = __splitstack_find(seg, cursor, &len, &next_seg, &next_sp, &initial);
    if (!base) return;
    visit(reinterpret_cast<uintptr_t>(base), reinterpret_cast<uintptr_t>(base) + len);
    if (next_seg == reinterpret_cast<void*>(uintptr_t{2})) return;  // the list's end
    seg = next_seg;
    cursor = next_sp;
    if (skip_morestack_saves) cursor = static_cast<char*>(cursor) + kMorestackSaves;
  }
  from = reinterpret_cast<uintptr_t>(cursor);
  if (from < lo) from = lo;
  if (from < hi) visit(from, hi);
#endif
}

}  // namespace gort::internal
