// The roots of marking, and the stacks among them (Go's mgcmark.go).
//
// Roots: every attached thread's stack and registers and every goroutine's stack (all scanned
// conservatively: any word that points into an allocated object keeps it), every goroutine's
// closure, the Root<T> slots, the specials (mfinal.hpp: finalizer objects' contents, closures)
// and the finalizer queue, and whatever the write barrier shaded.
//
// Stop-the-world marking (GODEBUG=gcstoptheworld=1, and checkmark's second mark) scans them all
// with the world stopped (scan_all_roots).
//
// Concurrent marking turns them into jobs that the background mark workers claim (root_job),
// and scans each stack once per cycle, identified by its number `gen`, never again and never by
// stopping the world:
//   - a goroutine that does not run is scanned in place by a worker, which holds the goroutine's
//     scan lock meanwhile (execute waits for it before running the goroutine);
//   - a running goroutine, and every attached thread, are scanned by stopping that one thread
//     (stop_thread, the suspend signal sent to it alone) for the time of its scan.
// Goroutines started during the cycle count as scanned: their stacks start empty. A program's
// thread that attaches during the cycle scans its own stack at once (AttachThread): the code
// that attached it has frames already. The hybrid write barrier (mbarrier.cpp) is what makes one scan per stack enough.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/core/thread.hpp"

namespace gort::internal {

class MarkWorker;
struct ThreadRecord;

// Every root, the world stopped. Returns the stack and root-slot bytes scanned (the pacer's
// stacks and globals).
struct RootBytes {
  uint64_t stacks = 0;
  uint64_t globals = 0;
};
// `m_stacks`: also the Ms' own stacks, which the concurrent mark leaves out (checkmark follows it).
RootBytes scan_all_roots(MarkWorker& w, bool m_stacks = true);

// The running (or last) concurrent cycle's number.
extern std::atomic<uint32_t> g_mark_gen;
// True when the stack the calling thread runs on (a goroutine's, or its own) was scanned in
// this cycle. A black stack makes the Dijkstra half of the barrier unnecessary, as in Go's
// hybrid barrier (shade the stored pointer only while the current stack is grey).
inline bool current_stack_black() {
  const std::atomic<uint32_t>* p = t_local.stack_scan_gen;
  return p && p->load(std::memory_order_relaxed) == g_mark_gen.load(std::memory_order_relaxed);
}
// A goroutine or thread scans its own stack (at its first span refill in a cycle: a safe point,
// inside a critical section), so that its later allocations and stores need no shading.
void scan_own_stack();
// Marks what the words of [lo, hi), part of the calling goroutine's or thread's own stack, point
// to, if that stack was scanned already this cycle (words written there since). For checkmark's
// consistency (GODEBUG=gccheckmark=1): a stack is otherwise never rescanned.
void scan_range_of_black_stack(uintptr_t lo, uintptr_t hi);

// Concurrent marking. roots_prepare runs with the world stopped at the start of cycle `gen`;
// root_job claims and runs one job (false: none left to claim), leaving what it found grey in
// `w` for the caller to drain or publish while it still counts as active (work_begin); roots_done:
// every job ran.
void roots_prepare(uint32_t gen);
bool root_job(MarkWorker& w);
bool roots_done();
RootBytes roots_scanned();

// World stopped at mark termination: shades what the threads' saved registers hold. Registers
// are tiny, and a dead one may still hold a pointer the program loaded long ago; the checking
// mark scans the same registers, so the two marks start from the same words.
void scan_stopped_registers(MarkWorker& w);

// Write-barrier buffers: of every attached thread, each stopped alone in turn (returns the
// entries flushed), or with the world stopped.
size_t flush_barrier_buffers_concurrently();
size_t flush_barrier_buffers_stopped();

// GODEBUG=gccheckmark=1 (mcheckmark.hpp). With checkmark on, every stack scan of the concurrent
// mark also zeroes the stack below its pointer (stack_zero_dead) when no code runs there, and a
// thread stopped synchronously (the code below its pointer still runs) zeroes below itself once
// it goes on; the checking mark's own scans (set_checkmark_scanning) take stacks from their
// stack pointers exactly, without the red zone.
void set_checkmark(bool on);
bool checkmark_scrubs_stacks();
void set_checkmark_scanning(bool on);
bool checkmark_scanning();

}  // namespace gort::internal
