#include "runtime/stats/mprof.hpp"

#include <unwind.h>

#include <cmath>
#include <cstring>

#include <gort/pprof.hpp>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/stats/stats.hpp"

namespace gort {
int MemProfileRate = 512 * 1024;
}

namespace gort::internal {

namespace {

SpinLock g_lock;  // the hash table and the bucket list (counters are atomics)
ProfileBucket** g_buckhash = nullptr;
std::atomic<ProfileBucket*> g_all{nullptr};
std::atomic<uint32_t> g_cycle{0};
PersistentAlloc& bucket_alloc() {
  static PersistentAlloc a(stats().buckhash_sys);
  return a;
}

int current_rate() { return std::atomic_ref<int>(MemProfileRate).load(std::memory_order_relaxed); }

struct Unwind {
  uintptr_t* pcs;
  int n;
};

_Unwind_Reason_Code collect(_Unwind_Context* ctx, void* arg) {
  auto* u = static_cast<Unwind*>(arg);
  if (u->n == kMaxStack) return _URC_END_OF_STACK;
  uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0) return _URC_END_OF_STACK;
  u->pcs[u->n++] = pc;
  return _URC_NO_REASON;
}

uint64_t hash_stack(const uintptr_t* stk, int n, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the words
  auto mix = [&](uint64_t v) { h = (h ^ v) * 0x100000001b3ull; };
  for (int i = 0; i < n; ++i) mix(stk[i]);
  mix(size);
  return h;
}

ProfileBucket* bucket_for(const uintptr_t* stk, int n, size_t size) {
  uint64_t h = hash_stack(stk, n, size);
  RuntimeLockGuard g(g_lock);
  if (!g_buckhash)  // mapped at the first sample, as Go does (BuckHashSys is 0 until then)
    g_buckhash = static_cast<ProfileBucket**>(sys_alloc(kBuckHashSize * sizeof(ProfileBucket*), stats().buckhash_sys));
  ProfileBucket*& head = g_buckhash[h % kBuckHashSize];
  for (ProfileBucket* b = head; b; b = b->next)
    if (b->hash == h && b->size == size && b->nstk == n && std::memcmp(b->stk, stk, sizeof(uintptr_t) * n) == 0) return b;
  void* mem = bucket_alloc().alloc(sizeof(ProfileBucket) + sizeof(uintptr_t) * n, alignof(ProfileBucket));
  auto* b = ::new (mem) ProfileBucket{};
  b->hash = h;
  b->size = size;
  b->nstk = n;
  std::memcpy(b->stk, stk, sizeof(uintptr_t) * n);
  b->next = head;
  head = b;
  b->allnext = g_all.load(std::memory_order_relaxed);
  g_all.store(b, std::memory_order_release);
  return b;
}

void add(ProfileCounts& to, ProfileCounts& from) {
  // Most buckets saw nothing since the last flush: four loads instead of eight locked
  // instructions each (a flush walks every bucket after every cycle).
  if ((from.allocs.load(std::memory_order_relaxed) | from.frees.load(std::memory_order_relaxed) |
       from.alloc_bytes.load(std::memory_order_relaxed) | from.free_bytes.load(std::memory_order_relaxed)) == 0)
    return;
  to.allocs.fetch_add(from.allocs.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
  to.frees.fetch_add(from.frees.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
  to.alloc_bytes.fetch_add(from.alloc_bytes.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
  to.free_bytes.fetch_add(from.free_bytes.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
}

// The size the object really occupies (Go records the size class's size): its slot, or the
// requested size inside a tiny block.
size_t object_size(void* p, size_t requested) {
  Span* s = mheap().arenas().span_of_checked(reinterpret_cast<uintptr_t>(p));
  if (!s || (s->sizeclass == kTinySizeClass && s->noscan && requested < kTinySize)) return requested;
  return s->elemsize;
}

}  // namespace

int64_t next_sample_distance() {
  int rate = current_rate();
  if (rate <= 0) return kRecheckBytes;
  if (rate == 1) return 0;  // every allocation
  double mean = std::min(rate, 0x7000000);  // Go's cap on the mean
  // An exponential draw: -mean * ln(U), U uniform in (0, 1].
  double u = (static_cast<double>(fastrand()) + 1.0) / 4294967296.0;
  return static_cast<int64_t>(-std::log(u) * mean);
}

// On a goroutine this runs on its M's stack (on_system_stack): the unwinder is libgcc's, built
// without split-stack, and called on a goroutine's stack it would make it grow a 1 MiB segment.
// gort_call_on_stack's call frame information leads the unwinder back onto the goroutine's stack,
// so the stack recorded is the goroutine's (below a few frames of gort's, which the profile's
// writer leaves out). The unwinder copies the goroutine's registers into its frames there; under
// GODEBUG=gccheckmark=1 on_system_stack zeroes them afterwards (see there).
__attribute__((noinline)) void profile_alloc(void* p, size_t size) {
  if (current_rate() <= 0) return;  // the distance was kRecheckBytes: only a look at the rate
  on_system_stack([&] {
    uintptr_t stk[kMaxStack];
    Unwind u{stk, 0};
    _Unwind_Backtrace(collect, &u);
    size_t objsize = object_size(p, size);
    ProfileBucket* b = bucket_for(stk, u.n, objsize);
    ProfileCounts& f = b->future[(g_cycle.load(std::memory_order_relaxed) + 2) % 3];
    f.allocs.fetch_add(1, std::memory_order_relaxed);
    f.alloc_bytes.fetch_add(objsize, std::memory_order_relaxed);
    add_profile_special(p, b);  // cannot throw: p is the start of an object just allocated
  });
}

void profile_free(ProfileBucket* b) {
  ProfileCounts& f = b->future[(g_cycle.load(std::memory_order_relaxed) + 1) % 3];
  f.frees.fetch_add(1, std::memory_order_relaxed);
  f.free_bytes.fetch_add(b->size, std::memory_order_relaxed);
}

void profile_next_cycle() { g_cycle.fetch_add(1, std::memory_order_relaxed); }

// As Go (mProf_Flush, mProf_PostSweep): cycle C after mark termination, C+1 once the sweep has
// counted the frees of the objects that mark found dead (sweep_specials calls profile_free).
void profile_flush() {
  uint32_t cycle = g_cycle.load(std::memory_order_relaxed);
  for (ProfileBucket* b = g_all.load(std::memory_order_acquire); b; b = b->allnext) add(b->active, b->future[cycle % 3]);
}

void profile_post_sweep() {
  uint32_t cycle = g_cycle.load(std::memory_order_relaxed);
  for (ProfileBucket* b = g_all.load(std::memory_order_acquire); b; b = b->allnext)
    add(b->active, b->future[(cycle + 1) % 3]);
}

ProfileBucket* profile_buckets() { return g_all.load(std::memory_order_acquire); }

}  // namespace gort::internal
