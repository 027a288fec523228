// Root<T> slots: managed pointers kept alive from memory the collector does not scan.
//
// Slots live in chunks of runtime memory (GCSys) and are recycled through a free list. Root<T> may be made
// and destroyed on any thread, attached or not; on attached threads the lock is only held inside a
// critical section, so a stopped thread never holds it.
#pragma once
#include <cstddef>

namespace gort::internal {

class MarkWorker;
// Marks every object held by a slot; returns the bytes of slots scanned (the pacer's "globals").
size_t scan_roots_table(MarkWorker& w);
size_t live_root_slots();

}  // namespace gort::internal
