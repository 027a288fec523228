// pprof::WriteHeapProfile: the heap profiler's buckets (stats/mprof.hpp) as Go's
// writeHeapProto writes them: profile.proto with the sample types alloc_objects/count,
// alloc_space/bytes, inuse_objects/count, inuse_space/bytes, period type space/bytes and period
// MemProfileRate, each sample's counts scaled up by Go's scaleHeapSample and labelled with its
// object size ("bytes"), then gzipped (zlib). Stacks start at the code that allocated
// (profilebuilder.hpp).
#include <gort/pprof.hpp>

#include <cmath>
#include <ostream>
#include <string>
#include <utility>

#include "runtime/monitor/profilebuilder.hpp"
#include "runtime/stats/mprof.hpp"

namespace gort::pprof {

namespace {

using internal::ProfileBucket;

// Go's scaleHeapSample: a sampled record of `count` objects and `size` bytes stands for
// count / (1 - exp(-avg / rate)) allocations of average size avg.
std::pair<int64_t, int64_t> scale(uint64_t count, uint64_t size, int rate) {
  if (count == 0 || size == 0) return {0, 0};
  if (rate <= 1) return {static_cast<int64_t>(count), static_cast<int64_t>(size)};
  double avg = static_cast<double>(size) / static_cast<double>(count);
  double s = 1 / (1 - std::exp(-avg / rate));
  return {static_cast<int64_t>(static_cast<double>(count) * s), static_cast<int64_t>(static_cast<double>(size) * s)};
}

// Go's MemProfile: a profile read before any collection has nothing published yet; then every
// cycle's pending counts are published, so a program that never collected still gets a profile.
void publish_if_nothing_published() {
  bool any = false;
  internal::for_each_profile_bucket([&](ProfileBucket* b) {
    if (b->active.allocs.load(std::memory_order_relaxed) || b->active.frees.load(std::memory_order_relaxed)) any = true;
  });
  if (any) return;
  internal::for_each_profile_bucket([](ProfileBucket* b) {
    for (auto& f : b->future) {
      b->active.allocs.fetch_add(f.allocs.exchange(0), std::memory_order_relaxed);
      b->active.frees.fetch_add(f.frees.exchange(0), std::memory_order_relaxed);
      b->active.alloc_bytes.fetch_add(f.alloc_bytes.exchange(0), std::memory_order_relaxed);
      b->active.free_bytes.fetch_add(f.free_bytes.exchange(0), std::memory_order_relaxed);
    }
  });
}

}  // namespace

void WriteHeapProfile(std::ostream& out) {
  int rate = std::atomic_ref<int>(MemProfileRate).load(std::memory_order_relaxed);
  internal::ProfileBuilder b;
  b.value_type(internal::kProfileSampleType, "alloc_objects", "count");
  b.value_type(internal::kProfileSampleType, "alloc_space", "bytes");
  b.value_type(internal::kProfileSampleType, "inuse_objects", "count");
  b.value_type(internal::kProfileSampleType, "inuse_space", "bytes");
  publish_if_nothing_published();
  internal::for_each_profile_bucket([&](ProfileBucket* bk) {
    uint64_t allocs = bk->active.allocs.load(std::memory_order_relaxed);
    uint64_t frees = bk->active.frees.load(std::memory_order_relaxed);
    uint64_t alloc_bytes = bk->active.alloc_bytes.load(std::memory_order_relaxed);
    uint64_t free_bytes = bk->active.free_bytes.load(std::memory_order_relaxed);
    if (allocs == 0) return;  // sampled, but not published yet
    auto [ao, ab] = scale(allocs, alloc_bytes, rate);
    auto [io, ib] = scale(allocs - frees, alloc_bytes - free_bytes, rate);
    b.sample(b.locations(bk->stk, bk->nstk), {ao, ab, io, ib}, static_cast<int64_t>(alloc_bytes / allocs));
  });
  b.time_and_period("space", "bytes", rate);
  std::string gz = b.finish_gzipped();
  if (gz.empty()) {
    out.setstate(std::ios::badbit);
    return;
  }
  out.write(gz.data(), static_cast<std::streamsize>(gz.size()));
}

}  // namespace gort::pprof
