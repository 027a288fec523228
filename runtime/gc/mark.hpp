// Marking (Go's mgcmark.go and mgcwork.go): parallel tracing from the roots.
//
// Each participant (the collecting thread and gc_procs()-1 mark worker threads) owns a MarkWorker
// with a local buffer of grey objects. Marking an object sets its bit in the span's mark bitmap
// with an atomic OR; only the thread that set the bit scans the object, through its type's
// trace(), which calls back into mark() for each child. A full local buffer is published to the
// shared queue; a worker that runs dry takes a published buffer, and an active worker splits its
// buffer when others are idle and nothing is published. Marking is complete when every
// participant is idle and the shared queue is empty (Go's work.nwait == work.nproc).
//
// A grey entry packs the object address (user addresses fit in 48 bits) with its type index.
#pragma once
#include <cstdint>

#include "runtime/alloc/span.hpp"

namespace gort::internal {

struct WorkBuf;

class MarkWorker {
 public:
  // Marks the object containing p, if p points into an allocated heap object.
  void mark(uintptr_t p);
  // Scans [lo, hi) word by word, treating every word as a possible pointer.
  void scan_conservative(uintptr_t lo, uintptr_t hi);
  // Queues the children of slot i of s for marking without marking the object itself (the
  // objects of finalizers are roots this way, see mfinal.hpp).
  void scan_object_contents(Span* s, uint32_t i);
  // Traces grey objects until the whole mark phase is out of work.
  void drain();
  // Hands local work to the shared queue so idle participants can take it.
  void publish();

  uint64_t marked_bytes = 0;
  uint64_t marked_objects = 0;

 private:
  void push(uint64_t entry);
  bool pop(uint64_t* entry);
  void balance();
  WorkBuf* cur_ = nullptr;
  // The span of the last object marked: children are often allocated next to their parent, so
  // most lookups skip the arena table.
  Span* last_span_ = nullptr;
};

// Runs the mark phase: calls scan_roots(worker) on the collecting thread, then drains with every
// mark worker thread. Returns CPU nanoseconds used by all participants and fills the totals.
struct MarkResult {
  uint64_t marked_bytes = 0;
  uint64_t marked_objects = 0;
  uint64_t cpu_ns = 0;         // all participants' marking
  uint64_t worker_cpu_ns = 0;  // the mark worker threads' share
};
MarkResult mark_phase(void (*scan_roots)(MarkWorker&));

void start_mark_workers(int n);
void stop_mark_workers();

}  // namespace gort::internal
