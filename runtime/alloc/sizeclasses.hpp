// Go's size classes (runtime/sizeclasses.go): 68 classes, class 0 standing for large objects.
//
// Objects up to kMaxSmallSize bytes are rounded up to a class; each class allocates spans of a
// fixed number of 8 KiB pages, chosen (by Go's generator) to bound tail waste to 12.5%. The table
// values are Go's, so BySize reports the same sizes a Go program shows.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gort::internal {

constexpr int kNumSizeClasses = 68;
constexpr size_t kMaxSmallSize = 32768;
constexpr size_t kPageShift = 13;
constexpr size_t kPageSize = size_t{1} << kPageShift;  // 8 KiB
constexpr size_t kTinySize = 16;                         // tiny allocator block size
constexpr int kTinySizeClass = 2;                        // the class of 16-byte blocks
constexpr int kMemStatsBySize = 61;                      // BySize reports classes 0..60
constexpr int kMaxObjectsPerSpan = 1024;                 // 8 KiB / 8 bytes

extern const uint16_t kClassToSize[kNumSizeClasses];
extern const uint8_t kClassToPages[kNumSizeClasses];
extern const uint16_t kClassToObjects[kNumSizeClasses];
// Multiplier m with (offset * m) >> 32 == offset / size for every offset inside a span of the class.
extern const uint32_t kClassToDivMagic[kNumSizeClasses];

// Index tables as Go's size_to_class8 / size_to_class128.
extern const uint8_t kSizeToClass8[1024 / 8 + 1];
extern const uint8_t kSizeToClass128[(kMaxSmallSize - 1024) / 128 + 1];

inline int size_to_class(size_t size) {
  return size <= 1024 - 8 ? kSizeToClass8[(size + 7) >> 3] : kSizeToClass128[(size - 1024 + 127) >> 7];
}

}  // namespace gort::internal
