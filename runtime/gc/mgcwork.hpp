// Grey objects and the work of blackening them (Go's mgcwork.go).
//
// Tri-colour marking: an object is white until its mark byte is set; grey once marked and queued
// for scanning; black once its type's trace() has shaded everything it references. Everyone who
// marks owns a MarkWorker, a local buffer of grey entries: the background mark workers, a
// mutator doing a mark assist or flushing its write-barrier buffer, the collector in a
// stop-the-world phase. Full buffers go to one global queue where any participant takes them;
// an entry packs the object's address (user addresses fit in 48 bits) with its type index.
//
// Mark bytes are set with a plain store (span.hpp): two markers racing on one object may both
// scan it, which is harmless. Objects allocated while marking are black from the start
// (allocate-black, mcache.cpp), and the object a constructor just filled is scanned once more
// (push_new_object), because a constructor's stores do not run the write barrier.
//
// Termination (concurrent marking): work exists while the global queue holds a buffer or some
// participant holds unpublished entries. A participant counts itself active (work_begin) before
// it takes a buffer or starts producing entries and stops counting (work_end) once it has
// published them, so "no full buffer, then nobody active", read in that order with sequentially
// consistent operations, means the queue is drained, as far as the participants go. What the
// mutators' write-barrier buffers still hold is flushed by the collector (mgc.cpp).
#pragma once
#include <atomic>
#include <cstdint>

#include "runtime/alloc/span.hpp"
#include "runtime/core/os.hpp"

namespace gort {
class Tracer;
}

namespace gort::internal {

struct WorkBuf;

class MarkWorker {
 public:
  MarkWorker() = default;
  MarkWorker(const MarkWorker&) = delete;
  MarkWorker& operator=(const MarkWorker&) = delete;
  ~MarkWorker();

  // Shades the object containing p, if p points into an allocated heap object: marks it and,
  // if it has a traced type, queues it for scanning.
  void mark(uintptr_t p);
  // The same for p, a traced field's value (Tracer::visit): the address of a live object, so its
  // allocation is not checked, and the shading is deferred: the object's mark byte (and type
  // entry, if its span has a table) are prefetched now and read a few children later, when they
  // have arrived (see kPending). Every path that ends a drain or publishes work first shades
  // what is pending.
  void mark_field(uintptr_t p);
  // Shades every word of [lo, hi) that points into the heap.
  void scan_conservative(uintptr_t lo, uintptr_t hi);
  // Queues slot i of s for scanning without marking it (a finalizer's object is a root this
  // way, see mfinal.hpp).
  void scan_object_contents(Span* s, uint32_t i);
  // Queues the object at p, just constructed, for scanning if it is in the heap and traced; marks
  // it too (it is black unless it was allocated just before the mark began).
  void push_new_object(uintptr_t p);

  // Stop-the-world marking: traces until every participant (drain_begin) is idle.
  void drain();
  // Concurrent marking: traces up to `budget` bytes of scan work, from the local buffer, then
  // from the global queue. Returns the scan work done; stops early when no work is left.
  int64_t drain_some(int64_t budget);
  // Hands local work to the global queue (shading what is pending first).
  void publish();
  // Shades the children mark_field deferred.
  void shade_pending();
  // Forgets local work (a diagnostic probe).
  void discard();
  bool has_local_work() const;

  uint64_t marked_bytes = 0;    // objects this participant marked
  uint64_t marked_objects = 0;
  // Bytes of objects queued for scanning and of roots scanned (the pacer's unit of work; an
  // object counts when queued, since every queued object is scanned exactly once).
  uint64_t scan_work = 0;
  // How much of marked_bytes and scan_work cycle_mark_account has counted already.
  uint64_t accounted_bytes = 0;
  uint64_t accounted_work = 0;

 private:
  void push(uint64_t entry);
  bool pop(uint64_t* entry);
  Span* span_for(uintptr_t p);
  // Marks slot i and counts it; false when it was marked already.
  bool mark_slot(Span* s, uint32_t i);
  void shade(Span* s, uint32_t i);
  // Children seen by trace() and not yet shaded, oldest first: marking reads side tables (mark
  // bytes, and type entries in spans that have them) that are one cache miss each per object;
  // prefetched kPending children ahead, the misses overlap (software prefetching for mark-sweep:
  // Cher, Hosking and Vijaykumar, ASPLOS 2004; Boehm GC prefetches the objects themselves, as
  // drain() does too).
  static constexpr uint32_t kPending = 16;
  struct Pending {
    Span* s;
    uint32_t i;
  };
  Pending pending_[kPending];
  uint32_t pending_head_ = 0, pending_n_ = 0;
  void balance();
  void scan_entry(uint64_t entry, Tracer& tracer);
  WorkBuf* cur_ = nullptr;
  // The span of the last object marked: children are often allocated next to their parent, so
  // most lookups skip the arena table.
  Span* last_span_ = nullptr;
};

// Checkmark's own marking: conservative scans skip words a byte store could have forged from a
// stale pointer after the stack was scanned (not 8-byte aligned, or ending in 0x00, or its top
// bytes cleared, or poisoned by ASan when the concurrent mark read it: mcheckmark.hpp,
// checkmark_revealed). Skipping a word only makes checkmark mark less, so it can miss a fault
// but never report a false one.
void skip_forgeable_words(bool on);

// Calls the trace() of type `type` on obj, shading its children into w (not scanning them).
void trace_object(MarkWorker& w, uint16_t type, uintptr_t obj);

// A concurrent cycle's totals over every participant (workers, assists, self-scans, barrier
// flushes): each adds what its MarkWorker marked and scanned since it last did, when it is done
// with it, and a background worker after each chunk of work: the pacer reads the scan work done
// so far while the mark runs (the assist ratio, Go's assistWorkPerByte, is what remains of the
// expected work over what remains of the heap's runway). Reset when the cycle starts; the
// collector reads them at mark termination (pacing: marked heap, scan work).
void cycle_mark_account(MarkWorker& w);
void cycle_mark_reset();
uint64_t cycle_marked_bytes();
uint64_t cycle_scan_work();

// Stop-the-world draining: `nproc` participants call drain(); it returns once all are idle.
void drain_begin(int nproc);

// Concurrent-marking bookkeeping (see the termination rule above).
void work_begin();
void work_end();
// A background worker starts or stops waiting for work: participants with work to spare then
// publish half of it (balance).
void work_hungry(bool waiting);
// True when no full buffer is queued and no participant is active.
bool work_drained();
// Notified whenever a buffer is published: idle workers and assists wait on it.
EventCount& work_published();
// Notified whenever work_end leaves no participant active and nothing queued (marking may be
// over): the collector waits on it.
EventCount& work_idle();
// Wakes everyone waiting on work_published() (marking stops).
void wake_work_waiters();

}  // namespace gort::internal
