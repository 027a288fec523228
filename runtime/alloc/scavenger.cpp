#include "runtime/alloc/scavenger.hpp"

#include <atomic>

#include "runtime/alloc/mheap.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
constexpr size_t kMaxStep = 4 << 20;
std::atomic<uint32_t> g_wake{0};
std::atomic<bool> g_stop{false};
pthread_t g_thread;

void* scavenger_main(void*) {
  attach_current_thread(/*scan_stack=*/false);
  while (!g_stop.load(std::memory_order_acquire)) {
    uint32_t seen = g_wake.load(std::memory_order_acquire);
    for (;;) {
      CriticalSection cs;
      size_t excess = scavenge_excess();
      if (excess == 0 || mheap().scavenge(excess < kMaxStep ? excess : kMaxStep) == 0) break;
    }
    blocked_wait([seen] { futex_wait(&g_wake, seen, 100000000); });
  }
  detach_current_thread();
  return nullptr;
}
}  // namespace

size_t scavenge_excess() {
  auto& st = stats();
  uint64_t retained = st.heap_sys.load() - st.heap_released.load(std::memory_order_relaxed);
  uint64_t goal = current_goal();
  uint64_t excess = 0;
  if (goal != kNoGoal) {
    uint64_t target = goal + goal / 10;
    if (retained > target) excess = retained - target;
  }
  int64_t limit = memory_limit();
  if (limit != kNoMemoryLimit) {
    uint64_t ready = st.sys_total() - st.heap_released.load(std::memory_order_relaxed);
    uint64_t target = static_cast<uint64_t>(limit) / 100 * 95;
    if (ready > target && ready - target > excess) excess = ready - target;
  }
  return excess;
}

void wake_scavenger() {
  g_wake.fetch_add(1, std::memory_order_release);
  futex_wake(&g_wake, 1);
}

void start_scavenger() {
  g_stop.store(false);
  g_thread = start_service_thread(scavenger_main, nullptr, "gort-scavenge");
}

void stop_scavenger() {
  g_stop.store(true);
  wake_scavenger();
  join_service_thread(g_thread);
}

}  // namespace gort::internal
