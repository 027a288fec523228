// The registry of managed types: for each type index, how to trace and how to destroy an object.
//
// Every object slot of a scan span (and of a noscan span once it holds a type with a destructor)
// carries its type index in the span's side table, so objects need no header. The top bits of a
// slot's entry record the destructor protocol (see sweep.hpp):
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

}  // namespace gort::internal
