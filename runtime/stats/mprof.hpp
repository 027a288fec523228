// The allocation-profiling bucket table (Go's mprof.go buckhash), counted in BuckHashSys.
//
// Go maps a hash table of 179,999 bucket pointers for its heap profiler; gort maps the same table
// at start so that BuckHashSys reports what the profiler will use. The profiler that fills it
// (sampling allocations every MemProfileRate bytes) is future work; until then the table stays
// untouched, so it costs address space but no physical memory.
#pragma once
#include <cstddef>

namespace gort::internal {

constexpr size_t kBuckHashSize = 179999;
void init_profiling_buckets();
struct ProfileBucket;
ProfileBucket** profiling_buckets();

}  // namespace gort::internal
