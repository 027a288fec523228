#include "runtime/core/thread.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "runtime/alloc/mcache.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/persistent.hpp"
#include "runtime/core/regs.hpp"
#include "runtime/core/sigframe.hpp"
#include "runtime/core/signalcall.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/sched/stack.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

thread_local constinit ThreadLocal t_local __attribute__((tls_model("initial-exec"))) = {nullptr, false, false, nullptr, 0};
thread_local constinit ThreadFront t_front __attribute__((tls_model("initial-exec")));

namespace {

constexpr int kSuspendSignal = SIGPWR;

std::mutex g_world_lock;
std::mutex g_registry_lock;
ThreadRecord* g_threads = nullptr;
PersistentAlloc g_record_alloc(stats().other_sys);
ThreadRecord* g_free_records = nullptr;

// Odd while the world is stopped (or being stopped). Stopped threads wait for it to change.
std::atomic<uint32_t> g_world_epoch{0};
std::atomic<uint32_t> g_acks{0};
// Set by a program (checkmark's tests toggle it) while threads read it: a relaxed atomic.
std::atomic<bool> g_scrub_when_stopped{false};

// Every stop (park, blocked_wait, the stopping thread's own in stop_the_world) starts its
// record here: the fields that describe how the thread stopped are reset, so none of them still
// describes an earlier stop (an interrupted handler's alternate stack left in
// interrupted_handler_hi by an earlier stop had a later blocked_wait's scan run from the thread's
// stack up to that alternate stack, across other mappings). The kind of stop then sets its own.
__attribute__((always_inline)) inline void record_stop(ThreadRecord* r, uintptr_t sp) {
  r->stopped_sp = sp;
  r->stopped_async = false;
  r->stopped_on_alt_stack = false;
  r->park_sp = 0;
  r->interrupted_handler_hi = 0;
  r->interrupted_sp = 0;
}

// Records where this thread's live stack ends and its registers, acknowledges, and waits for
// the world to restart. Runs in the signal handler or from suspend_self (on a goroutine's stack:
// the copies are mem_copy/mem_zero, never a libc call, see core/mem.hpp). Async-signal-safe.
// `segments` and `current` are libgcc's split-stack state read together with `sp`, before any
// call: park's own prologue may move it to another segment.
void park(ThreadRecord* r, const mcontext_t* regs, uintptr_t sp, void* segments, void* current, bool async) {
  uint32_t epoch = g_world_epoch.load(std::memory_order_acquire);
  uint32_t single = !(epoch & 1) ? r->single_stop.load(std::memory_order_acquire) : 0;
  if (!(epoch & 1) && !single) return;  // nothing to stop for
  // An asynchronous stop runs on an alternate signal stack when the thread has one (an M's, or
  // one the program installed for its own handlers): then nothing below sp is touched.
  // `here` is this frame's stack pointer: the checking mark scans up from it (ThreadRecord).
  // Only checkmark needs to know which stack this is, and asks the kernel: an address test
  // (here just below sp) took an alternate stack mapped right below the goroutine's stack for
  // that stack, and the 64 KiB scrub below then ran off the alternate stack's end, zeroing the
  // top of the mapping below it (a parked goroutine's frames) or faulting.
  uintptr_t here = stack_pointer();
  bool below_sp = !async || (g_scrub_when_stopped.load(std::memory_order_relaxed) && !on_alternate_signal_stack() && here < sp && sp - here < (64 << 10));
  mem_copy(&r->regs, regs, sizeof r->regs);
#if defined(__x86_64__)
  size_t vector_bytes = async ? std::min(signal_frame_vector_bytes(regs->fpregs), sizeof r->fpregs) : 0;
  mem_copy(r->fpregs, regs->fpregs, vector_bytes);
  r->fpregs_bytes = static_cast<uint32_t>(vector_bytes);
#else
  (void)async;
#endif
  record_stop(r, sp);
  r->stopped_async = async;
  if (async) {  // interrupted on the alternate signal stack: inside a handler (the handler that
                // runs this one is on it too, below sp)
    stack_t ss{};
    if (current_signal_stack(&ss) && (ss.ss_flags & SS_ONSTACK)) {
      auto lo = reinterpret_cast<uintptr_t>(ss.ss_sp), hi = lo + ss.ss_size;
      if (sp > lo && sp <= hi) {
        r->interrupted_handler_hi = hi;
        r->interrupted_sp = interrupted_stack_pointer(ss, sp);
      }
    }
  }
  r->stopped_on_alt_stack = async && !below_sp;
  r->park_sp = below_sp ? here : 0;
  r->split_segments = segments;
  r->split_current = current;
  if (single) {  // stop_thread: this thread alone, until that stop's number is withdrawn
    // Checkmark (mgcmark.hpp): nothing stale below. On an alternate signal stack there is
    // nothing to zero (an M's goroutine stack is zeroed by whoever scans it).
    if (g_scrub_when_stopped.load(std::memory_order_relaxed) && below_sp) scrub_stack(64 << 10);
    r->single_parked.store(single, std::memory_order_release);
    futex_wake(&r->single_parked, 1);
    while (r->single_stop.load(std::memory_order_acquire) == single) futex_wait(&r->single_stop, single);
    return;
  }
  // Acknowledge this very epoch: a thread that read an older epoch and was delayed must not
  // count as stopped for a newer stop-the-world.
  r->parked_epoch.store(epoch, std::memory_order_release);
  g_acks.fetch_add(1, std::memory_order_release);
  futex_wake(&g_acks, 1);
  while (g_world_epoch.load(std::memory_order_acquire) == epoch) futex_wait(&g_world_epoch, epoch);
}

GORT_NO_SPLIT void suspend_handler(int, siginfo_t*, void* uctx);
void suspend_handler(int, siginfo_t*, void* uctx) {
  [[maybe_unused]] SignalStackGuard on_alt_stack;
  int saved_errno = errno;
  ThreadRecord* r = t_local.record;
  if (r) {
    if (t_front.critical) {
      t_front.suspend_pending = true;
    } else if (kThreadSanitizer) {
      // TSan runs the handler late, at the thread's next intercepted call, with a copy of the
      // context the signal found: the thread has moved on since, and that copy's stack pointer
      // and registers no longer describe it. It stops here instead, from this frame, as a
      // cooperative stop does (no asynchronous preemption in these builds: nothing to inject),
      // if a stop still waits for it: it may have answered from blocked_wait since.
      if (stop_requested()) suspend_self();
    } else {
      auto* uc = static_cast<ucontext_t*>(uctx);
#if defined(__x86_64__)
      uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
      uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.sp);
#else
#error "gort: unsupported architecture"
#endif
      void *segments, *current;
      stack_current_segments(&segments, &current);
      park(r, &uc->uc_mcontext, sp, segments, current, /*async=*/true);
      // The stop may ask for a call on the way out: then the interrupted code calls it first.
      if (void (*call)(void*) = std::exchange(r->resume_call, nullptr)) {
#if GORT_SPLIT_STACK
        uintptr_t limit = on_alt_stack.saved;  // the interrupted stack's guard (0: it never grows)
#else
        uintptr_t limit = sp > r->g_stack_lo && sp <= r->g_stack_hi ? r->g_stack_lo : 0;
#endif
        if (void* frame = inject_call(uc, limit, call, saved_errno))
          injected_frame_range(frame, &r->injected_lo, &r->injected_hi);
      }
    }
  }
  errno = saved_errno;
}

uint64_t g_attach_ids = 0;
uint32_t g_single_stop_ids = 0;  // under the registry lock
uint32_t g_attach_scan_gen = 0;

ThreadRecord* new_record() {
  if (ThreadRecord* r = g_free_records) {
    g_free_records = r->next;
    r->~ThreadRecord();
    return new (r) ThreadRecord{};
  }
  return new (g_record_alloc.alloc(sizeof(ThreadRecord), alignof(ThreadRecord))) ThreadRecord{};
}

bool single_stop_requested(ThreadRecord* r, uint32_t single) {
  return single && r->signaled_single.load(std::memory_order_acquire) == single &&
         r->single_parked.load(std::memory_order_relaxed) != single;
}
bool world_stop_requested(ThreadRecord* r, uint32_t epoch) {
  return (epoch & 1) && r->signaled_epoch.load(std::memory_order_acquire) == epoch &&
         r->parked_epoch.load(std::memory_order_relaxed) != epoch;
}
// The stops waiting for this thread's answer, answered without parking: it is in blocked_wait,
// its record written (ThreadSanitizer builds, see blocked_wait).
void answer_stop_while_blocked(ThreadRecord* r) {
  if (uint32_t single = r->single_stop.load(std::memory_order_acquire); single_stop_requested(r, single)) {
    r->single_parked.store(single, std::memory_order_release);
    futex_wake(&r->single_parked, 1);
  }
  if (uint32_t epoch = g_world_epoch.load(std::memory_order_acquire); world_stop_requested(r, epoch)) {
    r->parked_epoch.store(epoch, std::memory_order_release);
    g_acks.fetch_add(1, std::memory_order_release);
    futex_wake(&g_acks, 1);
  }
}
}  // namespace

bool stop_requested() {
  ThreadRecord* r = t_local.record;
  if (!r) return false;
  return single_stop_requested(r, r->single_stop.load(std::memory_order_acquire)) ||
         world_stop_requested(r, g_world_epoch.load(std::memory_order_acquire));
}

void suspend_self() {
  t_front.suspend_pending = false;
#if defined(__x86_64__)
  // Spills the callee-saved registers into this frame (what getcontext did, without a call into
  // libc: this runs on goroutine stacks, see core/mem.hpp); the scan starts below the whole
  // frame, at the stack pointer.
  __builtin_unwind_init();
  uintptr_t sp = stack_pointer();
  void *segments, *current;
  stack_current_segments(&segments, &current);
  mcontext_t none;  // on this frame (park must not be a tail call), zeroed without libc
  mem_zero(&none, sizeof none);
  park(t_local.record, &none, sp, segments, current, /*async=*/false);
#else
  ucontext_t uc;
  getcontext(&uc);  // spills the callee-saved registers where the scan sees them
  park(t_local.record, &uc.uc_mcontext, reinterpret_cast<uintptr_t>(__builtin_frame_address(0)), nullptr, nullptr,
       /*async=*/false);
#endif
  // Checkmark: a scan during the stop saw nothing below sp, and park's wait ran there since (a
  // scanner does not zero under a thread that still runs, gc/mgcmark.cpp).
  if (g_scrub_when_stopped.load(std::memory_order_relaxed)) scrub_stack(64 << 10);
  // The caller-saved registers were dead at this call, so the stop recorded none of them: no
  // stale pointer they still held may outlive the stop unseen (core/regs.hpp; x86-64 only).
  clear_caller_saved_registers();
}

#if GORT_SPLIT_STACK
namespace {
// A frame of 4 KiB per call, recursing (not a tail call, so each frame lies below the last).
__attribute__((noinline)) void scrub_frames(size_t bytes) {
  constexpr size_t kChunk = 4096;
  char dead[kChunk];
  if (bytes > kChunk) scrub_frames(bytes - kChunk);
  mem_zero(dead, sizeof dead);
  asm volatile("" : : "r"(dead) : "memory");  // the stores must happen
}
}  // namespace
#endif

void scrub_stack_below(uintptr_t top, uintptr_t stack_lo, size_t bytes) {
  uintptr_t lo = top - std::min<uintptr_t>(top - stack_lo, bytes);
  mem_zero(reinterpret_cast<void*>(lo), top - lo);
}

void scrub_stack(size_t bytes) {
#if !GORT_SPLIT_STACK
  // Fixed stacks: on a goroutine's stack or an attached thread's own, zero from this function's
  // stack pointer down, `bytes` at most and never past the stack's low end. One run of stores
  // (mem_zero is inline, rep stosb; this leaf keeps nothing in its red zone), not frames of a
  // recursion: a frame's padding and saved slots would keep stale words between the zeroed
  // arrays. Writing below the stack pointer is safe (see below).
  ThreadRecord* r = t_local.record;
  if (!r) return;
  uintptr_t sp = stack_pointer();
  uintptr_t lo = 0;
  if (r->g_stack_hi && sp > r->g_stack_lo && sp <= r->g_stack_hi) lo = r->g_stack_lo;
  else if (r->stack_hi && sp > r->stack_lo && sp <= r->stack_hi) lo = r->stack_lo;
  if (!lo) return;  // not a stack of its own (an alternate signal stack): leave it alone
  if (sp > lo + bytes) lo = sp - bytes;
  mem_zero(reinterpret_cast<void*>(lo), sp - lo);
#else
  // With split stacks the guard word marks how far the current stack (or segment) goes down:
  // zero from this function's stack pointer (it has no frame: no_split_stack, only registers)
  // towards it. A local array would be wrong twice: it could lie past the end of a small stack,
  // or make __morestack run the call on another segment and leave the stale words in place.
  // Writing below the stack pointer is safe: a signal handler that lands meanwhile only leaves
  // dead words behind, zeroed when the loop resumes.
  if (uintptr_t guard = split_guard()) {
    uintptr_t sp = stack_pointer();
    if (sp > guard + bytes) guard = sp - bytes;
    if (sp > guard) mem_zero(reinterpret_cast<void*>(guard), sp - guard);
    return;
  }
  scrub_frames(bytes);  // a thread whose stack never grows (guard 0): a service thread's own
#endif
}

std::mutex& world_lock() { return g_world_lock; }
std::mutex& registry_lock() { return g_registry_lock; }
uint32_t world_epoch() { return g_world_epoch.load(std::memory_order_acquire); }
ThreadRecord* registry_first() { return g_threads; }

bool g_forked_child = false;

void fatal_in_forked_child(const char* what) {
  fatal("%s in the child of fork(): only the thread that forked exists there, none of the runtime's "
        "threads; the child of a program that uses gort may only exec or _exit",
        what);
}

void install_suspend_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    // SA_ONSTACK: on an M, the alternate signal stack (a goroutine's stack may be nearly full).
    if (!install_signal_handler(kSuspendSignal, suspend_handler, SA_RESTART | SA_ONSTACK))
      fatal("cannot install the SIGPWR handler: %s", strerror(errno));
    pthread_atfork(nullptr, nullptr, [] { g_forked_child = true; });
  });
}

namespace {
std::atomic<int> g_running_user_threads{0};
std::atomic<int> g_program_threads{0};
}

int running_user_threads() { return g_running_user_threads.load(std::memory_order_relaxed); }

namespace {
// The kernel's ids of gort's own threads (start_service_thread), for all_threads_known: by id,
// not by name, since every thread of a program inherits the program's name (a program called
// "gort-tests" has only "gort-..." threads).
constexpr int kMaxServiceTids = 256;
std::atomic<pid_t> g_service_tids[kMaxServiceTids];

void note_service_thread(bool running) {
  pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  for (auto& slot : g_service_tids) {
    pid_t expected = running ? 0 : self;
    if (slot.compare_exchange_strong(expected, running ? self : 0, std::memory_order_acq_rel)) return;
  }
  if (running) fatal("too many service threads");
}

bool service_thread(pid_t tid) {
  for (const auto& slot : g_service_tids)
    if (slot.load(std::memory_order_acquire) == tid) return true;
  return false;
}
}  // namespace

bool all_threads_known() {
  DIR* d = opendir("/proc/self/task");
  if (!d) return false;
  bool known = true;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
    bool attached = false;
    {
      StoppableLockGuard g(g_registry_lock);
      for (ThreadRecord* r = g_threads; r && !attached; r = r->next) attached = r->tid == tid;
    }
    if (attached || service_thread(tid)) continue;
    known = false;  // a thread of the program's that is not attached (yet): it could still send
    break;
  }
  closedir(d);
  return known;
}

int attached_program_threads() { return g_program_threads.load(std::memory_order_acquire); }

int attached_thread_count() {
  StoppableLockGuard g(g_registry_lock);
  int n = 0;
  for (ThreadRecord* r = g_threads; r; r = r->next) ++n;
  return n;
}

void user_thread_blocked(bool blocked) {
  if (t_local.user_thread) g_running_user_threads.fetch_add(blocked ? -1 : 1, std::memory_order_relaxed);
}

void attach_current_thread(bool scan_stack, bool program, bool critical) {
  if (ThreadRecord* r = t_local.record) {
    ++r->attach_depth;
    if (critical) enter_critical();
    return;
  }
  install_suspend_handler();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kSuspendSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  pthread_attr_t attr;
  void* stack_addr = nullptr;
  size_t stack_size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) fatal("pthread_getattr_np failed");
  pthread_attr_getstack(&attr, &stack_addr, &stack_size);
  pthread_attr_destroy(&attr);

  Cache* cache = cache_create();
  std::lock_guard g(g_registry_lock);
  ThreadRecord* r = new_record();
  r->thread = pthread_self();
  r->stack_lo = reinterpret_cast<uintptr_t>(stack_addr);
  r->stack_hi = r->stack_lo + stack_size;
  r->scan_stack = scan_stack;
  r->attach_depth = 1;
  r->attach_id = ++g_attach_ids;
  r->tid = static_cast<pid_t>(syscall(SYS_gettid));
  r->wait_reason.store(nullptr, std::memory_order_relaxed);
  // A program's thread that attaches while a mark runs is not black: its frames may already hold
  // words (AttachThread scans them at once). The runtime's own threads start empty.
  r->scan_gen.store(scan_stack && program ? g_attach_scan_gen - 1 : g_attach_scan_gen, std::memory_order_relaxed);
  r->cache = cache;
  // Before the record is in the list, under the registry lock a stopper takes first: a stop can
  // find the thread attached only once the caller left the section.
  if (critical) enter_critical();
  r->next = g_threads;
  if (g_threads) g_threads->prev = r;
  g_threads = r;
  t_front.cache = cache;
  t_local.record = r;
  t_local.stack_scan_gen = &r->scan_gen;
  t_local.user_thread = scan_stack && program;
  if (t_local.user_thread) {
    g_running_user_threads.fetch_add(1, std::memory_order_relaxed);
    g_program_threads.fetch_add(1, std::memory_order_release);
  }
  // Checkmark (gc/mgcmark.hpp): nothing stale below the stack pointer of a thread that attaches:
  // its stack may be one the C library recycled from a thread that exited, words included.
  if (g_scrub_when_stopped.load(std::memory_order_relaxed)) scrub_stack(64 << 10);
}

void detach_current_thread() {
  ThreadRecord* r = t_local.record;
  if (!r || --r->attach_depth > 0) return;
  // Give back the cache first (spans and counts go to the central lists), then leave the registry.
  // The cache is freed only after it left the record under the registry lock: ReadMemStats reads
  // the live caches' counts with that lock held (core/statsupdate.hpp).
  Cache* cache = r->cache;
  {
    CriticalSection cs;
    cache_release(cache);
    t_front.cache = nullptr;
  }
  {
    StoppableLockGuard g(g_registry_lock);
    r->cache = nullptr;
  }
  cache_free(cache);
  StoppableLockGuard g(g_registry_lock);
  if (r->prev) r->prev->next = r->next; else g_threads = r->next;
  if (r->next) r->next->prev = r->prev;
  t_local.record = nullptr;
  t_local.stack_scan_gen = nullptr;
  if (t_local.user_thread) {
    g_running_user_threads.fetch_sub(1, std::memory_order_relaxed);
    g_program_threads.fetch_sub(1, std::memory_order_release);
  }
  t_local.user_thread = false;
  r->next = g_free_records;
  g_free_records = r;
}

namespace {
// ThreadSanitizer builds: TSan keeps a signal that arrives outside an intercepted blocking call
// in the pending list of the fiber then current (each goroutine is a TSan fiber), and runs it
// when that fiber next leaves an interceptor. A goroutine switch in between leaves it with a
// fiber that may not run again for long, while the thread runs another that never sees it (the
// monitor's listener goroutine, in poll: its M never answered, and the stop waited forever;
// found from a hung run's thread records and /proc: the signal neither pending in the kernel nor
// blocked). The stopper sends the signal again while the thread has not answered: the new one
// is the current fiber's. A thread that answered meanwhile finds no stop in it (stop_requested).
constexpr uint64_t kTsanResendNs = 10000000;

// Waits until `answered()`; under TSan, signals `r` again every kTsanResendNs meanwhile.
// Each wait is bounded under TSan (futex_wait's slices), so the clock is looked at in time.
template <class Answered, class Wait>
void await_answer(ThreadRecord* r, Answered&& answered, Wait&& wait) {
  uint64_t sent = kThreadSanitizer ? nanotime() : 0;
  while (!answered()) {
    if (kThreadSanitizer && nanotime() - sent > kTsanResendNs) {
      pthread_kill(r->thread, kSuspendSignal);  // an error: it is exiting, and answers on the way out
      sent = nanotime();
    }
    wait();
  }
}
}  // namespace

int stop_the_world() {
  lock_stoppable(g_registry_lock);
  g_world_epoch.fetch_add(1, std::memory_order_seq_cst);
  uint32_t n = 0;
  ThreadRecord* self = t_local.record;
  uint32_t epoch = g_world_epoch.load(std::memory_order_relaxed);
  for (ThreadRecord* r = g_threads; r; r = r->next) {
    if (r == self) continue;
    if (r->blocked.load(std::memory_order_seq_cst)) {  // waits in blocked_wait: counts as stopped
      r->parked_epoch.store(epoch, std::memory_order_relaxed);
      continue;
    }
    if (kThreadSanitizer) r->signaled_epoch.store(epoch, std::memory_order_release);  // stop_requested
    int err = pthread_kill(r->thread, kSuspendSignal);
    if (err != 0) fatal("cannot stop an attached thread (did it exit without detaching?): %s", strerror(err));
    ++n;
  }
  for (ThreadRecord* r = g_threads; r; r = r->next) {
    if (r == self) continue;
    uint32_t acks = 0;
    await_answer(
        r,
        [&] {
          acks = g_acks.load(std::memory_order_acquire);
          return r->parked_epoch.load(std::memory_order_acquire) == epoch;
        },
        [&] { futex_wait(&g_acks, acks); });
  }
  if (self) {
    ucontext_t uc;
    getcontext(&uc);
    self->regs = uc.uc_mcontext;
#if defined(__x86_64__)
    self->fpregs_bytes = 0;
#endif
    record_stop(self, reinterpret_cast<uintptr_t>(__builtin_frame_address(0)));
    stack_current_segments(&self->split_segments, &self->split_current);
  }
  return static_cast<int>(n);
}

bool stop_thread(ThreadRecord* r, uint64_t attach_id, void (*fn)(ThreadRecord*, void*), void* arg) {
  std::lock_guard g(g_registry_lock);
  ThreadRecord* x = g_threads;
  while (x && !(x == r && r->attach_id == attach_id)) x = x->next;
  if (!x) return false;  // detached meanwhile
  // Each stop has its own number (never 0): the thread acknowledges that number, so a thread
  // still on its way out of the previous stop is not taken for stopped again.
  uint32_t id = ++g_single_stop_ids;
  if (id == 0) id = ++g_single_stop_ids;
  r->single_stop.store(id, std::memory_order_seq_cst);
  if (!r->blocked.load(std::memory_order_seq_cst)) {  // else it waits in blocked_wait: stopped already
    if (kThreadSanitizer) r->signaled_single.store(id, std::memory_order_release);  // stop_requested
    int err = pthread_kill(r->thread, kSuspendSignal);
    if (err != 0) fatal("cannot stop an attached thread (did it exit without detaching?): %s", strerror(err));
    uint32_t seen = 0;
    await_answer(
        r, [&] { return (seen = r->single_parked.load(std::memory_order_acquire)) == id; },
        [&] { futex_wait(&r->single_parked, seen); });
  }
  fn(r, arg);
  r->single_stop.store(0, std::memory_order_release);
  futex_wake(&r->single_stop, 1);
  return true;
}

void blocked_wait(void (*wait)(void*), void* arg) {
  ThreadRecord* r = t_local.record;
  if (!r || t_front.critical) {  // not attached, or inside a section no stop may enter anyway
    wait(arg);
    return;
  }
  // The record says where the stack stops and what the registers hold, as a stop would; the
  // callee-saved registers are spilled into this frame, above the recorded stack pointer.
  __builtin_unwind_init();
  uintptr_t sp = stack_pointer();
  stack_current_segments(&r->split_segments, &r->split_current);
  mem_zero(&r->regs, sizeof r->regs);
#if defined(__x86_64__)
  r->fpregs_bytes = 0;
#endif
  record_stop(r, sp);
  r->blocked.store(1, std::memory_order_seq_cst);
  // ThreadSanitizer builds: a stop that signaled this thread before it was blocked gets its
  // answer now (the record is written); the signal may not be delivered during the wait.
  if (kThreadSanitizer) answer_stop_while_blocked(r);
  wait(arg);
  // Checkmark (gc/mgcmark.hpp): a scan meanwhile saw nothing below sp, so nothing stale may
  // stay there for a later frame to pick up. Only the dead region below sp is written.
  if (g_scrub_when_stopped.load(std::memory_order_relaxed)) scrub_stack(64 << 10);
  r->blocked.store(0, std::memory_order_seq_cst);
  // A stop that counted on this thread while it waited holds it until that stop ends. (A stop
  // that signals instead finds it here and parks it in the handler, which is just as good.)
  for (;;) {
    uint32_t epoch = g_world_epoch.load(std::memory_order_seq_cst);
    uint32_t single = r->single_stop.load(std::memory_order_seq_cst);
    if (!(epoch & 1) && !single) break;
    if (kThreadSanitizer && stop_requested()) {  // a stop that found it running: no signal comes here
      suspend_self();
      continue;
    }
    if (epoch & 1) futex_wait(&g_world_epoch, epoch, 1000000);
    else futex_wait(&r->single_stop, single, 1000000);
  }
  // A scan meanwhile recorded no registers (above): the caller-saved ones, dead across this call,
  // must not bring back a pointer it did not see (core/regs.hpp; found by checkmark in ci40, "gc:
  // stress: threads build and drop trees": a Node named only by the r8 a thread's later stop
  // saved on its stack).
  clear_caller_saved_registers();
  asm volatile("" : : "r"(sp) : "memory");
}

void for_each_attached(void (*fn)(ThreadRecord*, void*), void* arg) {
  StoppableLockGuard g(g_registry_lock);
  for (ThreadRecord* r = g_threads; r; r = r->next) fn(r, arg);
}

void set_scrub_when_stopped(bool on) { g_scrub_when_stopped.store(on, std::memory_order_relaxed); }
bool scrub_when_stopped() { return g_scrub_when_stopped.load(std::memory_order_relaxed); }

void set_attach_scan_gen(uint32_t gen) { g_attach_scan_gen = gen; }  // world stopped: the registry lock is held

void start_the_world() {
  g_world_epoch.fetch_add(1, std::memory_order_acq_rel);
  futex_wake(&g_world_epoch);
  g_registry_lock.unlock();
}

namespace {
struct ServiceStack {
  pthread_t thread;
  void* base;
  size_t size;
};
constexpr size_t kServiceStackSize = 256 << 10;
constexpr int kMaxServiceThreads = 256;
ServiceStack g_service[kMaxServiceThreads];
std::mutex g_service_lock;

struct ServiceStart {
  void* (*fn)(void*);
  void* arg;
};

// A service thread runs only the runtime's code, on a fixed stack of its own: with split stacks
// its guard is 0 before the first split-stack prologue runs, so it never asks for a segment (a
// call into libc would otherwise want a 1 MiB one). The M's goroutines get theirs at each switch.
GORT_NO_SPLIT void* service_thread_entry(void* p);
void* service_thread_entry(void* p) {
#if GORT_SPLIT_STACK
  set_split_guard(0);
#endif
  ServiceStart start = *static_cast<ServiceStart*>(p);
  delete static_cast<ServiceStart*>(p);
  note_service_thread(true);
  void* result = start.fn(start.arg);
  note_service_thread(false);
  return result;
}
}  // namespace

pthread_t start_service_thread(void* (*fn)(void*), void* arg, const char* name) {
  void* stack = sys_alloc(kServiceStackSize, stats().stack_sys);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, kServiceStackSize);
  pthread_t t;
  int err = pthread_create(&t, &attr, service_thread_entry, new ServiceStart{fn, arg});
  pthread_attr_destroy(&attr);
  if (err != 0) fatal("cannot start the %s thread: %s", name, strerror(err));
  pthread_setname_np(t, name);
  std::lock_guard g(g_service_lock);
  for (auto& s : g_service) {
    if (!s.base) {
      s = {t, stack, kServiceStackSize};
      return t;
    }
  }
  fatal("too many service threads");
}

void join_service_thread(pthread_t t) {
  // Blocked meanwhile: a collection still running counts this thread as stopped instead of
  // signaling it (a signal reaches a TSan build's thread in pthread_join only once it returns).
  blocked_wait([t] { pthread_join(t, nullptr); });
  std::lock_guard g(g_service_lock);
  for (auto& s : g_service) {
    if (s.base && pthread_equal(s.thread, t)) {
      sys_free(s.base, s.size, stats().stack_sys);
      s = {};
    }
  }
}

}  // namespace gort::internal
