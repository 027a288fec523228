// Goroutine stacks: the pools, libgcc's segments, and the walks over them (design in stack.hpp).
//
// Why the collector's walk of a stopped thread's stack is complete (split stacks).
//
// What is live: the frames from the stack pointer up, on the stack the pointer is on, then on
// each older stack from where its newer one was entered. libgcc records that place in every
// segment (old_stack: the arguments of the function that called __morestack; the registers
// __morestack saved lie just under it, which __splitstack_find includes). So the walk needs two
// facts about the stopped thread, both read together with its stack pointer before any call
// (thread.cpp: a call's prologue could move to another segment): which stack sp is on, and that
// stack's chain of older ones. The frames of a segment are [sp, its end); of the first stack,
// [sp, hi); a thread stopped at an arbitrary instruction may also use the red zone under sp.
//
// Goroutine contexts let signals in while __morestack runs, so a thread may be stopped at any of
// its instructions. Where the stack pointer is, against libgcc's `current` (the segment in use):
//   1. outside __morestack, and inside it until it switches stacks: on `current`, or on the
//      first stack when current is null;
//   2. between __generic_morestack making the new segment current and the switch to it: on
//      current->prev (or the first stack), with nothing on the new segment yet;
//   3. after the switch, until __generic_releasestack pops it: on current;
//   4. between that pop and the switch back: on the popped segment, current->next (or the head
//      of the list when current became null), holding only the saved return registers; sp may be
//      exactly at its end once they are popped, with nothing left there.
// stack_locate searches in that order of safety: current and its predecessors (always mapped:
// libgcc unmaps only segments after the current one), then the first stack, then the popped
// segment (mapped in case 4: nothing unmaps it while sp is on it; read only when sp is on none
// of the others, so never while __generic_morestack is unmapping spare segments in cases 1-2).
// Containment is exact, not approximate: segments are separate mappings that the kernel often
// places right below another stack, so a segment's end may be the very address where a first
// stack begins. A stack pointer within some bytes of a first stack's start is therefore not
// "about on the first stack" (an earlier version assumed so, and lost the frames at the top of
// the segment below it: issue #8). The first stack is matched only strictly inside (lo, hi),
// where a live stack pointer always is (the split-stack guard keeps frames 3.5 KiB above lo, a
// thread's or goroutine's entry frames keep it below hi); a segment from its first usable byte
// to its end inclusive (case 3's first instructions, case 4's last). No two stacks share an
// address in those ranges, so the answer is unique.
//
// Where a thread can be stopped, and where (sp, segments, current) come from:
//   - anywhere, by the suspend signal (thread.cpp): sp from the signal context, libgcc's
//     thread-locals read inline by the no_split_stack handler before it calls anything (on an
//     M it runs on the alternate signal stack with the guard at 0, so it never grows the
//     goroutine's stack); the red zone under sp is scanned, and the registers separately;
//   - at the end of a critical section (suspend_self): sp after the callee-saved registers were
//     spilled into its frame, thread-locals read inline in the same frame;
//   - switched out (a parked or runnable goroutine): sp is the saved context, the list and
//     current saved by the switch (stack_context_save_running), nothing live under sp;
//   - on its M's stack (on_system_stack): the goroutine's stack is walked from the sp it left;
//     guard-0 code there never grows a stack, so libgcc's state still describes the goroutine's.
// In every case the four cases above apply to the goroutine's (or thread's) own stack.
//
// The `next` chain (spare segments) is read beyond current->next only for stacks nobody runs on:
// a goroutine switched out, a pooled stack.
#include "runtime/sched/stack.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "runtime/core/lock.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/sched/segments.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
// The pool links free first stacks through their own top word.
SpinLock g_lock;
uintptr_t g_free = 0;
std::atomic<uint64_t> g_first_bytes{0};  // mapped for first stacks (StackInuse minus segments)

#if GORT_SPLIT_STACK
// First stacks come out of chunks: one mapping per 128 stacks, so a million goroutines take a
// few thousand mappings (the kernel's limit is vm.max_map_count, 65530 by default).
constexpr size_t kStackChunk = 1 << 20;
uintptr_t g_chunk_next = 0, g_chunk_end = 0;
std::atomic<uint64_t> g_segment_bytes{0};

// Out of line, as every function here that calls libgcc's __splitstack_* (built without
// split-stack): the linker gives such a caller the 1 MiB prologue (core/splitstack.hpp), a call
// to __morestack_non_split each time, which stack_free should not pay for every goroutine.
__attribute__((noinline)) void release_segments(Stack& s) {
  if (s.lent_bytes) segments_note_lent(s);
  void* ctx[10] = {};
  ctx[0] = s.segments;
  __splitstack_releasecontext(ctx);
  stack_count_segments(-static_cast<int64_t>(s.segment_bytes));
  s.segments = nullptr;
  s.segment_bytes = 0;
}
#endif
}  // namespace

#if GORT_SPLIT_STACK
void stack_count_segments(int64_t delta) {
  stats().stack_inuse.add(delta);
  g_segment_bytes.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}
#endif

#if GORT_SPLIT_STACK

void stack_init() {
  static_assert(sizeof(Segment) == 7 * sizeof(void*));
  void* ctx[10];
  size_t size = 0;
  void* base = __splitstack_makecontext(kStackSize, ctx, &size);
  auto* seg = static_cast<Segment*>(ctx[0]);
  if (!base || base != seg + 1 || seg->size != size || seg->prev || seg->next || ctx[1] != seg)
    fatal("libgcc's split-stack segments are not laid out as gort expects; build with -Dstacks=fixed");
  __splitstack_releasecontext(ctx);
  // The inline switch halves must agree with libgcc's: install a context, read it back both ways.
  void* saved[10];
  __splitstack_getcontext(saved);
  StackContext probe;
  for (int i = 0; i < 10; ++i) probe.words[i] = saved[i];
  probe.words[6] = reinterpret_cast<void*>(uintptr_t{1});
  stack_context_install(probe);
  void* seen[10];
  __splitstack_getcontext(seen);
  StackContext mine = probe;
  stack_context_save_running(mine);
  __splitstack_setcontext(saved);
  for (int i : {0, 1, 3, 4, 5, 6})
    if (seen[i] != probe.words[i] || (i < 4 && mine.words[i] != seen[i]))
      fatal("libgcc's split-stack thread state is not laid out as gort expects; build with -Dstacks=fixed");
}

Stack stack_alloc() {
  LockGuard g(g_lock);
  if (uintptr_t top = g_free) {
    g_free = *reinterpret_cast<uintptr_t*>(top - sizeof(uintptr_t));
    return Stack{top - kStackSize, top};
  }
  // A chunk counts in StackSys when mapped, each stack in StackInuse once carved out of it (like
  // Go's idle and in-use heap pages): the untouched rest of the last chunk is not in use.
  if (g_chunk_next == g_chunk_end) {
    g_chunk_next = reinterpret_cast<uintptr_t>(sys_alloc(kStackChunk, stats().stack_sys));
    g_chunk_end = g_chunk_next + kStackChunk;
  }
  uintptr_t lo = g_chunk_next;
  g_chunk_next += kStackSize;
  {
    StatsUpdate batch;  // a transfer: StackSys unchanged
    stats().stack_sys.add(-static_cast<int64_t>(kStackSize));
    stats().stack_inuse.add(static_cast<int64_t>(kStackSize));
  }
  g_first_bytes.fetch_add(kStackSize, std::memory_order_relaxed);
  return Stack{lo, lo + kStackSize};
}

void stack_free(Stack s) {
  if (s.segments) release_segments(s);
  LockGuard g(g_lock);
  *reinterpret_cast<uintptr_t*>(s.hi - sizeof(uintptr_t)) = g_free;
  g_free = s.hi;
}

void stack_context_init(StackContext& c, const Stack& s) {
  for (void*& w : c.words) w = nullptr;
  c.words[0] = s.segments;  // spare segments: libgcc reuses the first that is big enough
  c.words[3] = __morestack_make_guard(reinterpret_cast<void*>(s.hi), kStackSize);
  c.words[4] = reinterpret_cast<void*>(s.hi);  // the initial stack
  c.words[5] = reinterpret_cast<void*>(kStackSize);
  // Do not block signals in __morestack (two system calls per segment switch), except under
  // GODEBUG=gccheckmark=1: a goroutine stopped by a signal is then never inside __morestack, so
  // its spare segments hold still and a scan may zero them (gc/mgcmark.cpp).
  c.words[6] = reinterpret_cast<void*>(uintptr_t{checkmark_scrubs_stacks() ? 0u : 1u});
}

uint64_t stack_list_bytes(void* segments) {
  uint64_t bytes = 0;
  for (auto* x = static_cast<Segment*>(segments); x; x = x->next) bytes += sizeof(Segment) + x->size;
  return bytes;
}

void stack_note_segments_slow(Stack& s, void* segments) {
  if (s.lent_bytes) segments_note_lent(s);
  uint64_t bytes = stack_list_bytes(segments);
  if (bytes != s.segment_bytes) stack_count_segments(static_cast<int64_t>(bytes) - static_cast<int64_t>(s.segment_bytes));
  s.segments = segments;
  s.segment_bytes = bytes;
}



namespace {
constexpr size_t kZeroDeadLimit = kScrubDepth;

// From the segment's first usable byte to its end, inclusive: a segment just switched to (or
// about to be left) has sp at its very end.
bool in_segment(uintptr_t sp, const Segment* x) {
  return sp >= reinterpret_cast<uintptr_t>(x + 1) && sp <= seg_hi(x);
}
}  // namespace

uintptr_t morestack_returning_saves(const StackLocation& at, uintptr_t from, uintptr_t hi, void* segments,
                                    void* current) {
  auto* cur = static_cast<Segment*>(current);
  Segment* popped = cur ? cur->next : static_cast<Segment*>(segments);
  if (!popped || !popped->old_stack) return 0;
  uintptr_t saves = reinterpret_cast<uintptr_t>(popped->old_stack) - kMorestackPushed;
  uintptr_t top = at.stack == kFirstStack ? hi : seg_hi(static_cast<const Segment*>(at.stack));
  return saves > from && saves + kMorestackReturningSaves <= top ? saves : 0;
}

StackLocation stack_locate(uintptr_t sp, uintptr_t lo, uintptr_t hi, void* segments, void* current) {
  auto* cur = static_cast<Segment*>(current);
  for (Segment* x = cur; x; x = x->prev)
    if (in_segment(sp, x)) return {x, reinterpret_cast<uintptr_t>(x + 1)};
  if (sp > lo && sp < hi) return {kFirstStack, lo};
  Segment* popped = cur ? cur->next : static_cast<Segment*>(segments);
  if (popped && in_segment(sp, popped)) return {popped, reinterpret_cast<uintptr_t>(popped + 1)};
  return {nullptr, 0};
}

void stack_segment_ranges(void* current, void (*visit)(void*, uintptr_t, uintptr_t), void* arg) {
  for (auto* x = static_cast<Segment*>(current); x; x = x->prev) visit(arg, seg_lo(x), seg_hi(x));
}

void stack_zero_dead(uintptr_t sp, uintptr_t below, uintptr_t lo, uintptr_t hi, void* segments, void* current,
                     bool spares) {
  StackLocation at = stack_locate(sp, lo, hi, segments, current);
  if (!at.stack) return;
  uintptr_t end = sp - at.base > below ? sp - below : at.base;
  uintptr_t start = end - at.base > kZeroDeadLimit ? end - kZeroDeadLimit : at.base;
  mem_zero(reinterpret_cast<void*>(start), end - start);
  // The older stacks the walk continues on, when sp is on a segment: each is live only from
  // where __morestack left it (its pushed registers included, see for_each_stack_range); below
  // that lie the dead frames of what ran there before the call that grew the stack, and
  // __morestack's return path calls into that region (pthread_sigmask, unblocking signals), whose
  // frames show the checking mark the words they do not overwrite.
  if (at.stack != kFirstStack) {
    bool own = true;
    for_each_stack_range(sp, below, lo, hi, segments, current, [&](uintptr_t from, uintptr_t) {
      if (std::exchange(own, false)) return;  // sp's own stack, zeroed above
      StackLocation older = stack_locate(from, lo, hi, segments, current);
      if (!older.stack || from <= older.base) return;
      uintptr_t zero_from = from - older.base > kZeroDeadLimit ? from - kZeroDeadLimit : older.base;
      mem_zero(reinterpret_cast<void*>(zero_from), from - zero_from);
    });
  }
  if (!spares) return;
  // The spare segments too, each within the same bound: a deeper call lands in the next one, a
  // deeper one still in the one after. Each spare's top holds what __morestack left there when
  // its last call returned (the return value it saved, a Node* of a finished recursion, say).
  for (auto* x = at.stack == kFirstStack ? static_cast<Segment*>(segments) : static_cast<Segment*>(at.stack)->next; x;
       x = x->next)
    mem_zero(reinterpret_cast<void*>(seg_hi(x) - std::min<size_t>(x->size, kZeroDeadLimit)),
             std::min<size_t>(x->size, kZeroDeadLimit));
}

void stack_scrub_all(const Stack& s) {
  mem_zero(reinterpret_cast<void*>(s.lo), s.hi - s.lo);
  for (auto* x = static_cast<Segment*>(s.segments); x; x = x->next) {
    size_t n = std::min<size_t>(x->size, kZeroDeadLimit);
    mem_zero(reinterpret_cast<void*>(seg_hi(x) - n), n);
  }
}

void* const* stack_current_segment_slot() { return &__morestack_current_segment; }

uint64_t stack_segment_bytes() { return g_segment_bytes.load(std::memory_order_relaxed); }

uint64_t stack_depth_bytes(void* current, uint64_t limit) {
  uint64_t bytes = 0;
  for (auto* x = static_cast<Segment*>(current); x && bytes <= limit;) {
    Segment header;
    iovec local{&header, sizeof header}, remote{x, sizeof header};
    // process_vm_readv on this very process: a read that fails (EFAULT) instead of faulting.
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(sizeof header)) break;
    bytes += sizeof(Segment) + header.size;
    x = header.prev;
  }
  return bytes;
}

#endif

uint64_t stack_first_bytes() { return g_first_bytes.load(std::memory_order_relaxed); }

#if !GORT_SPLIT_STACK

void stack_init() {}

Stack stack_alloc() {
  {
    LockGuard g(g_lock);
    if (uintptr_t top = g_free) {
      g_free = *reinterpret_cast<uintptr_t*>(top - sizeof(uintptr_t));
      return Stack{top - kStackSize, top};
    }
  }
  auto* base = static_cast<char*>(sys_reserve(nullptr, kStackSize + kOsPageSize));
  if (!base || !sys_try_map(base + kOsPageSize, kStackSize, stats().stack_inuse)) {
    // Each fixed stack is two mappings (guard page and stack): the kernel's vm.max_map_count,
    // not memory, is what usually runs out first.
    fatal("cannot map another goroutine stack (%llu bytes of stacks in use): each takes two memory "
          "mappings and the kernel limits a process to vm.max_map_count of them; segmented stacks "
          "(-Dstacks=split) lift this limit",
          static_cast<unsigned long long>(stats().stack_inuse.load()));
  }
  g_first_bytes.fetch_add(kStackSize, std::memory_order_relaxed);
  uintptr_t lo = reinterpret_cast<uintptr_t>(base) + kOsPageSize;
  return Stack{lo, lo + kStackSize};
}

void stack_free(Stack s) {
  LockGuard g(g_lock);
  *reinterpret_cast<uintptr_t*>(s.hi - sizeof(uintptr_t)) = g_free;
  g_free = s.hi;
}

void stack_context_init(StackContext&, const Stack&) {}
void stack_note_segments_slow(Stack&, void*) {}
StackLocation stack_locate(uintptr_t sp, uintptr_t lo, uintptr_t hi, void*, void*) {
  if (sp > lo && sp < hi) return {kFirstStack, lo};
  return {nullptr, 0};
}
void stack_segment_ranges(void*, void (*)(void*, uintptr_t, uintptr_t), void*) {}
void stack_zero_dead(uintptr_t sp, uintptr_t below, uintptr_t lo, uintptr_t hi, void*, void*, bool) {
  if (sp <= lo || sp >= hi) return;
  uintptr_t end = sp - lo > below ? sp - below : lo;
  mem_zero(reinterpret_cast<void*>(lo), end - lo);  // fixed stacks: 64 KiB at most
}
void stack_scrub_all(const Stack& s) { mem_zero(reinterpret_cast<void*>(s.lo), s.hi - s.lo); }
void* const* stack_current_segment_slot() { return nullptr; }
uint64_t stack_segment_bytes() { return 0; }
uint64_t stack_list_bytes(void*) { return 0; }
uint64_t stack_depth_bytes(void*, uint64_t) { return 0; }

#endif

}  // namespace gort::internal
