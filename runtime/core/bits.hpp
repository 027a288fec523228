// Bit counting without libgcc: with the x86-64 baseline (no -mpopcnt), std::popcount compiles to
// a call to libgcc's __popcountdi2, which is built without split-stack, so with split stacks the
// linker would make every caller ask for a 1 MiB stack segment (core/splitstack.hpp), and the call
// costs more than the bit arithmetic anyway.
#pragma once
#include <cstdint>

namespace gort::internal {

inline int popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
  return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
}

}  // namespace gort::internal
