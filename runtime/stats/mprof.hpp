// The heap profiler's records (Go's mprof.go): sampled allocations by call stack.
//
// Sampling. Each thread's cache counts down the bytes it allocates (Cache::next_sample), and
// each distance is drawn from an exponential distribution whose mean is MemProfileRate: the
// samples form a Poisson process over allocated bytes, as in Go, so an allocation of n bytes is
// sampled with probability 1 - exp(-n / rate) and the profile's writer scales each record up by
// its inverse. Unlike Go, the fast path does not count: a window of a span's free slots is
// counted when the cache loads it (alloc/mcache.cpp), and cut where the sample falls, so the fast
// path runs out of objects at the sampled one and the slow path hands it out flagged (large objects count on
// their own slow path; tiny objects count as the 16-byte blocks they are packed into). allocate()
// then calls profile_alloc.
// With MemProfileRate == 0 the distance is kRecheckBytes: the rate is looked at again after that
// many bytes, so a rate set later takes effect (Go reads it on every allocation).
//
// Records. A sampled allocation's call stack (return addresses, at most kMaxStack, from libgcc's
// unwinder; it crosses split-stack segments) and its size select a bucket in a hash table
// (kBuckHashSize entries, mapped at the first sample: BuckHashSys) of buckets allocated for good
// (also BuckHashSys). The object gets a Profile special (gc/mfinal.hpp); the collector calls
// profile_free when that object is found unreachable (and is not being resurrected).
//
// Cycles. As in Go, the profile shows the heap as of the last completed mark: an allocation is
// published only once the cycle after it has ended (so that its free, if it died, is published
// with it). Counts go to future[(cycle + 2) % 3] (allocations) and future[(cycle + 1) % 3]
// (frees); at mark termination profile_next_cycle() advances the cycle (world stopped) before the
// sweep counts the dead objects' frees; profile_flush() (after the mark, world running) adds
// future[cycle % 3] to the published counts, and profile_post_sweep() (once that sweep is done)
// future[(cycle + 1) % 3], as Go's mProf_Flush and mProf_PostSweep. Counters are atomics: allocating threads and the collector update
// them without a common lock.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gort::internal {

struct Cache;

constexpr size_t kBuckHashSize = 179999;
constexpr int kMaxStack = 32;
constexpr int64_t kRecheckBytes = 64 << 20;

struct ProfileCounts {
  std::atomic<uint64_t> allocs{0}, frees{0}, alloc_bytes{0}, free_bytes{0};
};

struct ProfileBucket {
  ProfileBucket* next;     // in its hash chain
  ProfileBucket* allnext;  // every bucket, newest first
  uint64_t hash;
  size_t size;             // of each object recorded here
  ProfileCounts active;    // published
  ProfileCounts future[3];
  int nstk;
  uintptr_t stk[];         // return addresses, innermost first
};

// The next sampling distance in bytes for the current MemProfileRate (a fresh cache starts with one).
int64_t next_sample_distance();
// allocate(): p (size bytes requested) is a sample. Records it if sampling is on.
void profile_alloc(void* p, size_t size);
// The collector, world stopped: p's object (of bucket b) is dead.
void profile_free(ProfileBucket* b);
void profile_next_cycle();
void profile_flush();
void profile_post_sweep();

// Calls fn(bucket) for every bucket (the list only grows; buckets are never freed).
template <class F>
void for_each_profile_bucket(F&& fn);
ProfileBucket* profile_buckets();

template <class F>
void for_each_profile_bucket(F&& fn) {
  for (ProfileBucket* b = profile_buckets(); b; b = b->allnext) fn(b);
}

}  // namespace gort::internal
