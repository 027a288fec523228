// ReadMemStats (Go's mstats.go readmemstats_m): one consistent snapshot, without stopping the
// world (Go stops it).
//
// Every field comes from the counter of the component that did the work (stats.hpp); allocation
// counts still held by the threads' caches are added to the flushed ones. The counters are read
// while no batch of updates runs (core/statsupdate.hpp), so they are the state at one instant
// between batches, where every identity of docs/memstats.md holds. Some hold by construction
// here (Sys = sum of *Sys, HeapIdle + HeapInuse = HeapSys, HeapObjects = Mallocs - Frees,
// Alloc = HeapAlloc), the others because each batch keeps them (HeapAlloc <= HeapInuse: a span
// is in use before objects are counted in it, and its frees are counted before it is given back).
#include <gort/memstats.hpp>


#include <algorithm>
#include <cstring>
#include <mutex>

#include "runtime/alloc/mcache.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/alloc/scavenger.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/stats/gctrace.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

RuntimeStats& stats() noexcept {
  static RuntimeStats s;
  return s;
}

namespace {
template <class T>
T load(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}

// Runs with no batch of updates under way (read_consistently): reads, nothing else.
void fill(MemStats* m) {
  memset(m, 0, sizeof *m);  // padding too: no stale stack bytes left for a conservative scan to see
  auto& st = stats();
  uint64_t nmalloc[kNumSizeClasses] = {};
  uint64_t tiny = st.tiny_allocs.load(std::memory_order_relaxed);
  for_each_thread([&](ThreadRecord* r) {
    if (r->cache) cache_add_counts(r->cache, nmalloc, &tiny);
  });
  uint64_t mallocs = 0, frees = 0, total_alloc = 0, freed_bytes = 0;
  for (int c = 1; c < kNumSizeClasses; ++c) {
    nmalloc[c] += st.small_mallocs[c].load(std::memory_order_relaxed);
    uint64_t nfree = st.small_frees[c].load(std::memory_order_relaxed);
    mallocs += nmalloc[c];
    frees += nfree;
    total_alloc += nmalloc[c] * kClassToSize[c];
    freed_bytes += nfree * kClassToSize[c];
    if (c < kMemStatsBySize) m->BySize[c] = {kClassToSize[c], nmalloc[c], nfree};
  }
  m->BySize[0] = {0, 0, 0};
  mallocs += st.large_mallocs.load(std::memory_order_relaxed);
  frees += st.large_frees.load(std::memory_order_relaxed);
  total_alloc += st.large_alloc_bytes.load(std::memory_order_relaxed);
  freed_bytes += st.large_free_bytes.load(std::memory_order_relaxed);
  // Go counts objects placed in an existing tiny block as both allocated and freed at once.
  mallocs += tiny;
  frees += tiny;

  m->Alloc = m->HeapAlloc = total_alloc - freed_bytes;
  m->TotalAlloc = total_alloc;
  m->Lookups = 0;
  m->Mallocs = mallocs;
  m->Frees = frees;
  m->HeapObjects = mallocs - frees;

  m->HeapSys = st.heap_sys.load();
  m->HeapInuse = st.heap_inuse.load(std::memory_order_relaxed);
  m->HeapIdle = m->HeapSys - m->HeapInuse;
  m->HeapReleased = st.heap_released.load(std::memory_order_relaxed);
  m->StackInuse = st.stack_inuse.load();
  m->StackSys = m->StackInuse + st.stack_sys.load();
  m->MSpanInuse = st.mspan_inuse.load(std::memory_order_relaxed);
  m->MSpanSys = st.mspan_sys.load();
  m->MCacheInuse = st.mcache_inuse.load(std::memory_order_relaxed);
  m->MCacheSys = st.mcache_sys.load();
  m->BuckHashSys = st.buckhash_sys.load();
  m->GCSys = st.gc_sys.load();
  m->OtherSys = st.other_sys.load();
  m->Sys = m->HeapSys + m->StackSys + m->MSpanSys + m->MCacheSys + m->BuckHashSys + m->GCSys + m->OtherSys;

  m->LastGC = load(st.last_gc_unix_ns);
  m->PauseTotalNs = load(st.pause_total_ns);
  for (int i = 0; i < 256; ++i) {
    m->PauseNs[i] = load(st.pause_ns[i]);
    m->PauseEnd[i] = load(st.pause_end[i]);
  }
  m->NumGC = load(st.numgc);
  m->NumForcedGC = load(st.numforcedgc);
}

// The fields that are one figure each, outside any identity: read after the snapshot.
void fill_rest(MemStats* m) {
  m->NextGC = current_goal();
  m->GCCPUFraction = gc_cpu_fraction(nanotime());
  m->EnableGC = true;
  m->DebugGC = false;
}
}  // namespace

}  // namespace gort::internal

namespace gort {

using namespace internal;

void ReadMemStats(MemStats* m) {
  if (t_front.critical) fatal("ReadMemStats inside a runtime critical section");
  on_system_stack([m] {  // a goroutine's small stack would grow by a segment for it
    note_calling_goroutine_stack();
    read_consistently([m] { fill(m); });
    fill_rest(m);
  });
}

void GC() { gc_run(GcReason::Forced); }

namespace {
void read_gc_stats(debug::GCStats* out) {
  using std::chrono::nanoseconds;
  using std::chrono::system_clock;
  auto unix_time = [](uint64_t ns) {
    return system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(nanoseconds(ns)));
  };
  // The pause history changes in one batch per cycle (record_pause): a consistent read.
  uint64_t numgc, total, last;
  uint64_t pause[256], end[256];
  read_consistently([&] {
    auto& st = stats();
    numgc = load(st.numgc);
    total = load(st.pause_total_ns);
    last = load(st.last_gc_unix_ns);
    for (int i = 0; i < 256; ++i) {
      pause[i] = load(st.pause_ns[i]);
      end[i] = load(st.pause_end[i]);
    }
  });
  size_t n = numgc < 256 ? numgc : 256;
  out->NumGC = static_cast<int64_t>(numgc);
  out->PauseTotal = nanoseconds(total);
  out->LastGC = unix_time(last);
  out->Pause.resize(n);
  out->PauseEnd.resize(n);
  for (size_t i = 0; i < n; ++i) {  // newest first: entry (NumGC-1-i) mod 256
    size_t k = (numgc - 1 - i) % 256;
    out->Pause[i] = nanoseconds(pause[k]);
    out->PauseEnd[i] = unix_time(end[k]);
  }
  if (!out->PauseQuantiles.empty()) {
    if (n == 0) {
      std::fill(out->PauseQuantiles.begin(), out->PauseQuantiles.end(), nanoseconds(0));
    } else {
      std::vector<nanoseconds> sorted(out->Pause);
      std::sort(sorted.begin(), sorted.end());
      size_t nq = out->PauseQuantiles.size() - 1;
      for (size_t i = 0; i < nq; ++i) out->PauseQuantiles[i] = sorted[sorted.size() * i / nq];
      out->PauseQuantiles[nq] = sorted.back();
    }
  }
}
}  // namespace

namespace debug {
int SetGCPercent(int percent) { return set_gc_percent(percent); }
int64_t SetMemoryLimit(int64_t limit) {
  int64_t old = set_memory_limit(limit);
  if (limit >= 0) wake_scavenger();
  return old;
}
void ReadGCStats(GCStats* out) {
  if (t_front.critical) fatal("ReadGCStats inside a runtime critical section");
  on_system_stack([out] { read_gc_stats(out); });  // libstdc++ calls: off a goroutine's small stack
}
void FreeOSMemory() {
  gc_run(GcReason::FreeOSMemory);
  bool attached = current_thread_attached();
  if (attached) enter_critical();
  mheap().scavenge(~size_t{0});
  if (attached) leave_critical();
}
}  // namespace debug

}  // namespace gort
