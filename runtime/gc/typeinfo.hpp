// The registry of managed types: for each type index, how to trace and how to destroy an object.
//
// Objects need no header: a span knows its objects' type index, either one for all of them or one
// per slot in a side table (alloc/span.hpp). A span holding a type with a destructor always has
// the table: the top bits of a slot's entry record the destructor protocol (see sweep.hpp):
//   T            live object of type T
//   T|kPending   unreachable, destructor queued: kept, still traced if found
//   kDestroying  its destructor is running or ran: kept until the next sweep, never traced
//   0            nothing to trace or destroy
#pragma once
#include <atomic>
#include <cstdint>

#include <gort/heap.hpp>

namespace gort::internal {

struct TypeInfo {
  TraceFn trace;
  DestroyFn destroy;
  const char* name;
};

constexpr uint16_t kPendingDestroy = 0x8000;
constexpr uint16_t kDestroying = 0x7fff;
constexpr uint16_t kMaxTypes = 0x7ffe;

extern TypeInfo g_types[kMaxTypes + 1];

inline const TypeInfo& type_info(uint16_t index) { return g_types[index & ~kPendingDestroy]; }

inline uint16_t load_type(const uint16_t* slot) {
  return std::atomic_ref<const uint16_t>(*slot).load(std::memory_order_relaxed);
}
inline void store_type(uint16_t* slot, uint16_t t) {
  std::atomic_ref<uint16_t>(*slot).store(t, std::memory_order_relaxed);
}
// The destructor thread gives a slot back (kDestroying -> 0) with a release store, and the sweep
// that frees the slot reads the entry with an acquire load: what the destructor wrote into the
// object happens before the slot's reuse (a data race ThreadSanitizer reported otherwise).
inline uint16_t load_type_acquire(const uint16_t* slot) {
  return std::atomic_ref<const uint16_t>(*slot).load(std::memory_order_acquire);
}
inline void store_type_release(uint16_t* slot, uint16_t t) {
  std::atomic_ref<uint16_t>(*slot).store(t, std::memory_order_release);
}

}  // namespace gort::internal
