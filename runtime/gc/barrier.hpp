// The write barrier's shade queue (see mbarrier.cpp).
#pragma once
#include <cstddef>

namespace gort::internal {
class MarkWorker;
// Marks every pointer the barrier shaded since the last drain; returns how many there were.
size_t drain_shaded(MarkWorker& w);
}  // namespace gort::internal
