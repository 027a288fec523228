// Go's size classes (runtime/sizeclasses.go): 68 classes, class 0 standing for large objects.
//
// Objects up to kMaxSmallSize bytes are rounded up to a class; each class allocates spans of a
// fixed number of 8 KiB pages, chosen (by Go's generator) to bound tail waste to 12.5%. The table
// values are Go's, so BySize reports the same sizes a Go program shows.
#pragma once
#include <cstddef>
#include <cstdint>

#include <gort/internal/alloc.hpp>  // the classes' sizes, shared with make<T>'s inline path

namespace gort::internal {

constexpr size_t kPageShift = 13;
constexpr size_t kPageSize = size_t{1} << kPageShift;  // 8 KiB
constexpr int kTinySizeClass = 2;                        // the class of 16-byte blocks
constexpr int kMemStatsBySize = 61;                      // BySize reports classes 0..60
constexpr int kMaxObjectsPerSpan = 1024;                 // 8 KiB / 8 bytes

// Hidden: read on the allocation fast path, they are addressed directly (rip-relative) rather
// than through the shared library's global offset table, one dependent load less.
#define GORT_TABLE extern const __attribute__((visibility("hidden")))
GORT_TABLE uint8_t kClassToPages[kNumSizeClasses];
GORT_TABLE uint16_t kClassToObjects[kNumSizeClasses];
// Multiplier m with (offset * m) >> 32 == offset / size for every offset inside a span of the class.
GORT_TABLE uint32_t kClassToDivMagic[kNumSizeClasses];

// Index tables as Go's size_to_class8 / size_to_class128.
GORT_TABLE uint8_t kSizeToClass8[1024 / 8 + 1];
GORT_TABLE uint8_t kSizeToClass128[(kMaxSmallSize - 1024) / 128 + 1];

#undef GORT_TABLE

inline int size_to_class(size_t size) {
  if (size <= 1024 - 8) [[likely]] return kSizeToClass8[(size + 7) >> 3];
  return kSizeToClass128[(size - 1024 + 127) >> 7];
}

}  // namespace gort::internal
