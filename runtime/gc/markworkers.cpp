#include "runtime/gc/markworkers.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>

#include "runtime/core/os.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/assist.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::internal {

namespace {

enum class Command : uint32_t { Sleep, StwDrain, Concurrent, Shutdown };

constexpr int kMaxWorkers = 256;
// Scan work per chunk of concurrent marking: small enough that the worker notices the end of
// the mark phase and its time share quickly, large enough to amortize the queue's lock.
constexpr int64_t kChunkWork = 256 << 10;
constexpr int kRootJobsPerRound = 256;

// The current command and its sequence number in one word (number << 4 | command), so that a
// worker reads both together and carries out each command once; workers wait on it.
std::atomic<uint32_t> g_cmd{0};
pthread_t g_threads[kMaxWorkers];
int g_nworkers = 0;

// Stop-the-world draining.
std::atomic<uint32_t> g_finished{0};
std::atomic<uint64_t> g_stw_cpu_ns{0}, g_stw_bytes{0}, g_stw_objects{0}, g_stw_work{0};

// Concurrent marking.
int g_dedicated = 0;
double g_fraction = 0;  // of wall time, for the fractional worker: fractional goal x procs
uint64_t g_start_ns = 0;
std::atomic<uint32_t> g_running{0};  // workers that have not finished the current session
std::atomic<uint32_t> g_session{0};  // concurrent marks started
std::atomic<uint64_t> g_ded_ns{0}, g_frac_ns{0}, g_idle_ns{0};

void command(Command c) {
  uint32_t old = g_cmd.load(std::memory_order_relaxed);
  g_cmd.store(((old >> 4) + 1) << 4 | static_cast<uint32_t>(c), std::memory_order_release);
  futex_wake(&g_cmd);
}

void stw_drain() {
  uint64_t t0 = thread_cpu_ns();
  MarkWorker w;
  w.drain();
  g_stw_bytes.fetch_add(w.marked_bytes, std::memory_order_relaxed);
  g_stw_objects.fetch_add(w.marked_objects, std::memory_order_relaxed);
  g_stw_work.fetch_add(w.scan_work, std::memory_order_relaxed);
  g_stw_cpu_ns.fetch_add(thread_cpu_ns() - t0, std::memory_order_relaxed);
  g_finished.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&g_finished, 1);
}

// Root jobs, as many as make a chunk of work: most are one parked goroutine's small stack, and
// a round of the worker loop per job (two CPU-clock reads, each a system call) cost more than
// the scans (skynet's ~100,000 goroutines per cycle).
bool root_jobs(MarkWorker& w, uint64_t work0) {
  bool did = false;
  for (int n = 0; n < kRootJobsPerRound && w.scan_work - work0 < static_cast<uint64_t>(kChunkWork) && root_job(w); ++n)
    did = true;
  return did;
}

enum class Mode { Dedicated, Fractional, Idle };

// Idle-mode workers run under Linux's SCHED_IDLE policy: the kernel gives them a core only when
// nothing else wants it, which is what Go's idle workers get from its scheduler (a P with no
// goroutine to run). The others, and every worker in a stop-the-world drain, run normally.
void set_idle_priority(bool idle) {
  sched_param p{};
  pthread_setschedparam(pthread_self(), idle ? SCHED_IDLE : SCHED_OTHER, &p);
}

void concurrent_mark(int index) {
  Mode mode = index < g_dedicated                      ? Mode::Dedicated
              : index == g_dedicated && g_fraction > 0 ? Mode::Fractional
                                                       : Mode::Idle;
  int idle_rank = index - g_dedicated - (g_fraction > 0 ? 1 : 0);
  if (mode == Mode::Idle) set_idle_priority(true);
  std::atomic<uint64_t>& account = mode == Mode::Dedicated ? g_ded_ns : mode == Mode::Fractional ? g_frac_ns : g_idle_ns;
  MarkWorker w;
  uint64_t ran_ns = 0;  // wall time spent marking (the fractional worker's share)
  for (;;) {
    uint32_t seq = g_cmd.load(std::memory_order_acquire);
    if (static_cast<Command>(seq & 15) != Command::Concurrent) break;
    if (mode == Mode::Fractional) {
      double allowed = static_cast<double>(nanotime() - g_start_ns) * g_fraction;
      if (static_cast<double>(ran_ns) > allowed) {
        auto wait = static_cast<int64_t>((static_cast<double>(ran_ns) - allowed) / g_fraction);
        futex_wait(&g_cmd, seq, std::min<int64_t>(wait, 1000000));
        continue;
      }
    } else if (mode == Mode::Idle && idle_procs() <= idle_rank) {
      futex_wait(&g_cmd, seq, 1000000);  // a processor may go idle meanwhile: look again soon
      continue;
    }
    uint32_t published = work_published().prepare();
    uint64_t c0 = thread_cpu_ns(), t0 = nanotime(), work0 = w.scan_work;
    work_begin();
    bool did = root_jobs(w, work0) || w.drain_some(kChunkWork) > 0 || drain_shaded(w) > 0;
    w.publish();
    work_end();
    // What the workers mark pays for allocation before assists do (Go's gcFlushBgCredit), and
    // counts as done for the assist ratio (Go's gcController.heapScanWork, flushed per drain).
    add_background_credit(static_cast<int64_t>(w.scan_work - work0));
    cycle_mark_account(w);
    account.fetch_add(thread_cpu_ns() - c0, std::memory_order_relaxed);
    ran_ns += nanotime() - t0;
    if (!did) {
      work_hungry(true);
      work_published().wait(published, 1000000);
      work_hungry(false);
    }
  }
  if (mode == Mode::Idle) set_idle_priority(false);
  cycle_mark_account(w);
  if (g_running.fetch_sub(1, std::memory_order_acq_rel) == 1) futex_wake(&g_running);
}

struct WorkerArg {
  int index;
};

void* worker_main(void* p) {
  int index = static_cast<WorkerArg*>(p)->index;
  delete static_cast<WorkerArg*>(p);
  uint32_t seen = 0, seen_session = 0;
  for (;;) {
    uint32_t cmd;
    while ((cmd = g_cmd.load(std::memory_order_acquire)) == seen) futex_wait(&g_cmd, seen);
    seen = cmd;
    // Every worker checks in once per concurrent session, even one that ended before it woke:
    // bg_mark_stop counts them out.
    if (uint32_t session = g_session.load(std::memory_order_acquire); session != seen_session) {
      seen_session = session;
      concurrent_mark(index);
    }
    switch (static_cast<Command>(cmd & 15)) {
      case Command::Shutdown: return nullptr;
      case Command::StwDrain: stw_drain(); break;
      case Command::Concurrent:
      case Command::Sleep: break;
    }
  }
}

}  // namespace

void start_gc_workers(int n) {
  g_nworkers = std::clamp(n, 0, kMaxWorkers);
  for (int i = 0; i < g_nworkers; ++i) g_threads[i] = start_service_thread(worker_main, new WorkerArg{i}, "gort-mark");
}

void stop_gc_workers() {
  command(Command::Shutdown);
  for (int i = 0; i < g_nworkers; ++i) join_service_thread(g_threads[i]);
  g_nworkers = 0;
}

MarkResult drain_stopped(MarkWorker& self) {
  if (work_drained() && !self.has_local_work()) return {};  // the usual end of a concurrent mark
  uint64_t t0 = thread_cpu_ns();
  drain_begin(1 + g_nworkers);
  self.publish();
  g_finished.store(0, std::memory_order_relaxed);
  g_stw_cpu_ns.store(0, std::memory_order_relaxed);
  g_stw_bytes.store(0, std::memory_order_relaxed);
  g_stw_objects.store(0, std::memory_order_relaxed);
  g_stw_work.store(0, std::memory_order_relaxed);
  uint64_t bytes0 = self.marked_bytes, objects0 = self.marked_objects, work0 = self.scan_work;
  command(Command::StwDrain);
  self.drain();
  for (uint32_t f; (f = g_finished.load(std::memory_order_acquire)) < static_cast<uint32_t>(g_nworkers);)
    futex_wait(&g_finished, f);
  command(Command::Sleep);
  MarkResult r;
  r.marked_bytes = self.marked_bytes - bytes0 + g_stw_bytes.load(std::memory_order_relaxed);
  r.marked_objects = self.marked_objects - objects0 + g_stw_objects.load(std::memory_order_relaxed);
  r.scan_work = self.scan_work - work0 + g_stw_work.load(std::memory_order_relaxed);
  r.worker_cpu_ns = g_stw_cpu_ns.load(std::memory_order_relaxed);
  r.cpu_ns = thread_cpu_ns() - t0 + r.worker_cpu_ns;
  return r;
}

MarkResult mark_phase(void (*scan_roots)(MarkWorker&)) {
  uint64_t t0 = thread_cpu_ns();
  MarkWorker w;
  scan_roots(w);
  uint64_t root_bytes = w.marked_bytes, root_objects = w.marked_objects, root_work = w.scan_work;
  uint64_t root_cpu = thread_cpu_ns() - t0;
  MarkResult r = drain_stopped(w);  // counts what it marks from here on
  r.marked_bytes += root_bytes;
  r.marked_objects += root_objects;
  r.scan_work += root_work;
  r.cpu_ns += root_cpu;
  return r;
}

void bg_mark_start(int dedicated, double fractional_goal, int procs) {
  g_dedicated = std::min(dedicated, g_nworkers);
  g_fraction = fractional_goal * procs;
  g_start_ns = nanotime();
  for (auto* a : {&g_ded_ns, &g_frac_ns, &g_idle_ns}) a->store(0, std::memory_order_relaxed);
  g_running.store(static_cast<uint32_t>(g_nworkers), std::memory_order_relaxed);
  g_session.fetch_add(1, std::memory_order_release);
  command(Command::Concurrent);
}

void bg_mark_stop() {
  command(Command::Sleep);
  wake_work_waiters();  // workers that found nothing to do wait for published work
  for (uint32_t r; (r = g_running.load(std::memory_order_acquire)) != 0;) futex_wait(&g_running, r, 1000000);
}

BgMarkStats bg_mark_stats() {
  return {g_ded_ns.load(), g_frac_ns.load(), g_idle_ns.load()};
}

}  // namespace gort::internal
