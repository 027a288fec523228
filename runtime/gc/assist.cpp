#include "runtime/gc/assist.hpp"

#include <algorithm>
#include <atomic>

#include "runtime/alloc/mcache.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/limiter.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::internal {

namespace {
std::atomic<int64_t> g_bg_credit{0};
// Scan work per critical section of an assist; an assist does whole chunks, at least one (Go's
// gcOverAssistWork: it does not come back at the next span for a sliver of work).
constexpr int64_t kAssistChunk = 64 << 10;

int64_t steal_credit(int64_t want) {
  int64_t have = g_bg_credit.load(std::memory_order_relaxed);
  while (have > 0) {
    int64_t take = std::min(have, want);
    if (g_bg_credit.compare_exchange_weak(have, have - take, std::memory_order_acq_rel)) return take;
  }
  return 0;
}

// Drains up to `work` on the calling thread's M stack; returns the work done.
int64_t assist_drain(int64_t work) {
  int64_t done = 0;
  on_system_stack([&] {
    CriticalSection cs;  // no stop finds this thread holding unpublished grey objects
    work_begin();
    {
      MarkWorker w;
      done = w.drain_some(work);
      cycle_mark_account(w);
    }  // published
    work_end();
  });
  return done;
}
}  // namespace

int64_t assist_debt_after(int64_t work_left, double per_byte) {
  if (per_byte <= 0) return 0;
  return std::max(static_cast<int64_t>(static_cast<double>(work_left) / per_byte), -kMaxAssistCredit);
}

void add_background_credit(int64_t work) { g_bg_credit.fetch_add(work, std::memory_order_relaxed); }
int64_t background_credit() { return g_bg_credit.load(std::memory_order_relaxed); }
void reset_assist_state() { g_bg_credit.store(0, std::memory_order_relaxed); }

void gc_assist(Cache* c) {
  if (cpu_limiter_limiting()) {  // the collector used its share of CPU: let the program run
    c->assist_debt = 0;
    return;
  }
  double per_byte = assist_work_per_byte();
  auto debt = static_cast<int64_t>(static_cast<double>(c->assist_debt) * per_byte);
  if (debt <= 0) return;
  debt -= steal_credit(debt);
  // Time spent marking counts as the assist's CPU (Go's assistTime: gcAssistAlloc1's duration),
  // not the waits for work, during which the thread sleeps.
  uint64_t spent = 0;
  for (int waits = 0; debt > 0 && gc_marking();) {
    uint64_t t0 = nanotime();
    int64_t done = assist_drain(kAssistChunk);
    spent += nanotime() - t0;
    debt -= done;
    if (done > 0) continue;
    // Nothing to drain: the workers hold it or the stacks are being scanned. Their surplus will
    // pay; wait for it (or for the end of the mark), a bounded time per look.
    debt -= steal_credit(debt);
    if (debt <= 0 || ++waits > 2000) break;  // 2000 x 50 us: past that, the mark is nearly done
    uint32_t seq = work_published().prepare();
    user_thread_blocked(true);
    work_published().wait(seq, 50000);
    user_thread_blocked(false);
  }
  add_assist_time(spent);
  limiter_add_assist_time(spent);
  c->assist_debt = assist_debt_after(debt, per_byte);  // over-assisting leaves credit
  if (!gc_marking()) c->assist_debt = 0;
}

}  // namespace gort::internal
