// Stack segments (split stacks only): libgcc's segment header, and gort's pool of idle segments.
//
// libgcc maps a segment when a goroutine's frame does not fit (stack.hpp) and keeps the popped
// ones linked after the one in use, as spares for the next growth. Left alone, a goroutine that
// once called into code built without split-stack (libc, libstdc++: a 1 MiB segment, the gold
// linker's rule) would hold that segment for the rest of its life, parked or not. So gort manages
// the spare list from the switch path, the way Go's stack caches work:
//   - a goroutine that switches out (parks, yields, exits) while on its first stack owns no
//     segment in use, only spares: they go to its P's cache (segments_take_spares);
//   - a goroutine that ran on a segment lately (or starts in a G whose last goroutine did) gets
//     one back from the cache or the pool when it next runs with none (segments_lend), so
//     growing again costs no system call: libgcc finds it at the head of the spare list and uses
//     it instead of mapping one. One that did not use the segments lent to it for kSegmentHint
//     switches gets none after that. A goroutine's first run takes one from its P's cache
//     whatever its G did (the cache is there because goroutines here grow), never from the
//     global pool (a lock per spawn);
//   - when a goroutine that grows finds the cache and the pool empty, gort maps segments itself,
//     4 per mmap (goroutines that all grow at once contend on the kernel's mmap lock), in
//     libgcc's layout: libgcc uses them, and may unmap one, as its own;
//   - a P's cache holds kCacheSegments; beyond that, segments go to the global pool in batches;
//     after each collection the pool frees (munmap) what stayed idle for a whole cycle, the way
//     Go frees its stack pools' unused spans at every cycle.
// A goroutine parked while running on a segment keeps it (its frames are there) and its spares.
//
// Accounting (MemStats): a segment a goroutine holds, in use or spare, counts in StackInuse once
// noted (when the goroutine switches out on it, or calls ReadMemStats: stack.hpp); an idle one in
// a cache or the pool in StackSys only (stack_sys). A lent segment stays counted idle until it is
// noted: a goroutine that grows into it and returns before it switches out gives it back unnoted,
// so the common round trip changes no figure and costs no StatsUpdate. Each move is one batch.
//
// The switch path only reaches into the lists of a goroutine that is switched out and still
// marked Running (nobody else reads its context then: scanners wait for Waiting/Runnable), or
// about to be switched in (Running already). The pool's segments are private to gort: no
// collector scans them (they hold no live frame).
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/sched/stack.hpp"

namespace gort::internal {

#if GORT_SPLIT_STACK
// libgcc's header at the start of each segment it maps (generic-morestack.c): the walk uses
// prev and old_stack through __splitstack_find; gort reads next and size to sum, locate and pool
// segments. stack_init checks the layout against libgcc's own answers before the first use.
struct Segment {
  Segment* prev;
  Segment* next;
  size_t size;  // usable bytes after the header
  void* old_stack;
  void* dynamic_allocation;
  void* free_dynamic_allocation;
  void* extra;
};
inline uintptr_t seg_lo(const Segment* s) { return reinterpret_cast<uintptr_t>(s); }
inline uintptr_t seg_hi(const Segment* s) { return reinterpret_cast<uintptr_t>(s + 1) + s->size; }
inline uint64_t seg_bytes(const Segment* s) { return sizeof(Segment) + s->size; }
#endif

// A P's idle segments (owner only).
struct SegmentCache {
  void* list = nullptr;
  int n = 0;
};
constexpr int kCacheSegments = 4;
// How many switches without growing a goroutine that grew goes on being lent a segment: a
// goroutine may wait several times between two calls into libc (a send, then a receive).
constexpr uint8_t kSegmentHint = 8;

// A goroutine switched out on its first stack (c.current() null): its spare segments go to
// `cache` (null: the global pool). Returns whether it ran on any of them since they were lent or
// mapped: a goroutine that stopped growing stops being lent one.
bool segments_take_spares(Stack& s, StackContext& c, SegmentCache* cache);
// A goroutine about to run with no spare: gives it one idle segment from `cache`, or with
// `from_pool` from the global pool when the cache has none.
void segments_lend(Stack& s, StackContext& c, SegmentCache* cache, bool from_pool);
// After a collection: frees the pooled segments that stayed idle since the previous one.
void segments_release_idle();
// Bytes of idle segments (caches and pool), all counted in StackSys.
uint64_t segments_idle_bytes();

}  // namespace gort::internal
