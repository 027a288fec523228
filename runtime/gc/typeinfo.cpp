#include "runtime/gc/typeinfo.hpp"

#include <mutex>

#include "runtime/core/sysmem.hpp"

namespace gort::internal {

// Index kDestroying has neither trace nor destroy, so a slot in that state is inert.
TypeInfo g_types[kMaxTypes + 1];

namespace {
std::mutex g_types_lock;
uint16_t g_ntypes = 1;  // index 0: pointer-free, trivially destructible
}  // namespace

uint16_t register_type(TraceFn trace, DestroyFn destroy, const char* name) {
  std::lock_guard g(g_types_lock);
  if (g_ntypes >= kDestroying) fatal("more than %d managed types", kMaxTypes);
  g_types[g_ntypes] = TypeInfo{trace, destroy, name};
  return g_ntypes++;
}

}  // namespace gort::internal
