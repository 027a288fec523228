// The allocation-profiling bucket table (Go's mprof.go buckhash), counted in BuckHashSys.
//
// Go maps a hash table of 179,999 bucket pointers (1.4 MB) when its profiler records its first
// call-stack bucket, not before: a program that never samples reports a BuckHashSys near 0 (and
// a Go binary that never reads a profile has sampling off altogether). gort does the same: the
// heap profiler calls init_profiling_buckets() before it records its first bucket; until a
// profiler samples, no table exists and BuckHashSys is 0.
#pragma once
#include <cstddef>

namespace gort::internal {

constexpr size_t kBuckHashSize = 179999;
void init_profiling_buckets();
struct ProfileBucket;
ProfileBucket** profiling_buckets();

}  // namespace gort::internal
