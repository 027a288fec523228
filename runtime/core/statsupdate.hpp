// Consistent statistics without stopping the world: a sequence number per thread (a seqlock).
//
// Writers. Every change of the runtime's statistics (stats/stats.hpp: the *Sys and in-use
// counters, the page heap's, allocation and free counts, the pause history) happens inside a
// StatsUpdate, a batch of changes that together keep the identities of docs/memstats.md. While a
// batch lasts, the writing thread's ThreadRecord::stats_seq is odd (batches nest: the outermost
// one counts). A thread that is not attached uses one global number, under a spin lock. Batches
// hold counter updates only, never a wait.
//
// Readers (ReadMemStats, ReadGCStats). With the thread registry locked (nobody attaches or
// detaches), read_consistently notes every number, runs the reader, and looks at the numbers
// again: if none was odd and none moved, no batch overlapped the reads, so they saw the state at
// one instant between batches, where every identity holds. Otherwise it reads again. (Go keeps
// the same kind of number per P for its consistent heap statistics, mstats.go; it still stops
// the world for ReadMemStats.)
//
// One kind of change is not batched: a cache's own allocation counts, incremented by its thread
// on the allocation fast path (count_own, relaxed atomic stores, read relaxed). Each counts an
// object in a span that a finished batch already put in HeapInuse, so whether a reader sees an
// increment or not, no identity breaks.
//
// Memory ordering (Boehm, "Can seqlocks get along with programming language memory models?",
// 2012): the writer stores the odd number, issues a release fence, makes its changes and stores
// the even number with release; the reader loads the numbers with acquire, the counters relaxed,
// issues an acquire fence and loads the numbers again. If a counter load saw a batch's change,
// the second load of that thread's number sees the batch's odd number or later.
#pragma once
#include <atomic>
#include <cstdint>

#include "runtime/core/thread.hpp"

namespace gort::internal {

void stats_update_begin_unattached();
void stats_update_end_unattached();

class StatsUpdate {
 public:
  __attribute__((always_inline)) StatsUpdate() {
    if (t_local.stats_depth++ != 0) return;
    seq_ = t_local.record ? &t_local.record->stats_seq : nullptr;
    if (!seq_) [[unlikely]] {
      stats_update_begin_unattached();
      return;
    }
    seq_->store(seq_->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  __attribute__((always_inline)) ~StatsUpdate() {
    if (--t_local.stats_depth != 0) return;
    if (!seq_) [[unlikely]] {
      stats_update_end_unattached();
      return;
    }
    seq_->store(seq_->load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  StatsUpdate(const StatsUpdate&) = delete;
  StatsUpdate& operator=(const StatsUpdate&) = delete;

 private:
  std::atomic<uint32_t>* seq_ = nullptr;
};

// A count its thread alone increments, read by others without a batch (see above).
__attribute__((always_inline)) inline void count_own(uint64_t& n, uint64_t by = 1) {
  std::atomic_ref<uint64_t> a(n);
  a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
__attribute__((always_inline)) inline void count_own(uint32_t& n) {
  std::atomic_ref<uint32_t> a(n);
  a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
__attribute__((always_inline)) inline uint64_t read_count(uint64_t& n) {
  return std::atomic_ref<uint64_t>(n).load(std::memory_order_relaxed);
}
__attribute__((always_inline)) inline uint32_t read_count(uint32_t& n) {
  return std::atomic_ref<uint32_t>(n).load(std::memory_order_relaxed);
}

// Runs read(arg) until one run overlaps no batch (see above); returns how many runs it took.
// read() runs with the thread registry locked: it may walk the attached threads, and must not
// wait or allocate. One reader at a time.
int read_consistently(void (*read)(void*), void* arg);
template <class F>
int read_consistently(F&& read) {
  return read_consistently([](void* f) { (*static_cast<std::remove_reference_t<F>*>(f))(); }, &read);
}

}  // namespace gort::internal
