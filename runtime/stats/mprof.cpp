#include "runtime/stats/mprof.hpp"

#include "runtime/core/sysmem.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
ProfileBucket** g_buckhash = nullptr;
}

void init_profiling_buckets() {
  if (!g_buckhash)
    g_buckhash = static_cast<ProfileBucket**>(sys_alloc(kBuckHashSize * sizeof(ProfileBucket*), stats().buckhash_sys));
}

ProfileBucket** profiling_buckets() { return g_buckhash; }

}  // namespace gort::internal
