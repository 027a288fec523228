// Attached threads, critical sections and stopping the world.
//
// Every OS thread that touches the heap is attached: it has a ThreadRecord in the registry and a
// per-thread allocation cache. A collection stops the world by sending each attached thread the
// suspend signal (SIGPWR, as Boehm GC does on Linux); the handler records the thread's registers
// and stack pointer and waits until the world restarts. Signals reach threads that are computing
// or blocked in system calls alike, so no thread can hold up a collection by not calling gort.
//
// Critical sections: runtime code that updates shared heap state (allocation, sweeping, locks)
// runs inside one. A suspend signal arriving inside a critical section is deferred: the handler
// only sets suspend_pending, and the thread suspends itself when it leaves the section. Hence a
// stopped thread never holds a runtime lock and never leaves heap metadata half-updated, and the
// collector can use every runtime structure freely while the world is stopped. The flags are
// plain thread-locals ordered with signal fences: only the thread itself and its own signal
// handler access them.
//
// Lock order: world lock (one stop-the-world at a time) -> registry lock -> runtime spin locks.
// The collector takes no runtime lock before the world is stopped.
#pragma once
#include <pthread.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include <gort/internal/alloc.hpp>

#include "runtime/core/sanitizer.hpp"
#include "runtime/core/splitstack.hpp"

namespace gort::internal {

struct Cache;

constexpr uintptr_t kRedZone = 128;  // x86-64 ABI: leaf functions may use 128 bytes below sp

struct ThreadRecord {
  ThreadRecord* next = nullptr;
  ThreadRecord* prev = nullptr;
  pthread_t thread{};
  uintptr_t stack_lo = 0, stack_hi = 0;  // the thread's whole stack
  bool scan_stack = true;                // false for gort's own service threads
  int attach_depth = 0;
  Cache* cache = nullptr;
  // An M running a goroutine: that goroutine's stack, and where the M's own (scheduler) stack
  // was left; both are set inside the critical section of each switch.
  uintptr_t g_stack_lo = 0, g_stack_hi = 0;
  uintptr_t g0_sp = 0;
  // While such an M runs runtime code on its own stack (on_system_stack): the goroutine's stack
  // pointer when it left it; else 0.
  uintptr_t g_sys_sp = 0;
  // Filled when the thread stops: its stack pointer (the red zone under it may be live too) and
  // the saved register file.
  uintptr_t stopped_sp = 0;
  // The stack pointer of park(), which holds the thread while it is stopped, when it runs on the
  // stopped stack (a synchronous stop, or a handler without an alternate stack): its frames and
  // their callees' lie below stopped_sp and are live until the thread resumes. 0 otherwise.
  // After an asynchronous stop (stopped_async) it is the handler's innermost frame: between it
  // and stopped_sp lie the kernel's signal frame and the handler's frames, dead once the thread
  // resumes.
  uintptr_t park_sp = 0;
  // The last stop was asynchronous and its handler ran on an alternate signal stack (an M's):
  // nothing below stopped_sp and its red zone is in use until the thread resumes.
  // This field, and park_sp after an asynchronous stop, are for checkmark, their only reader,
  // and exact only under it (the handler asks the kernel then, see park()); otherwise every
  // asynchronous stop reads as one on an alternate stack, with park_sp 0.
  bool stopped_on_alt_stack = false;
  // The last stop interrupted a signal handler of the program's running on the thread's
  // alternate signal stack: the top of that stack, else 0. [stopped_sp, this) then holds the
  // handler's frames and, above them, the kernel's frame of the code the handler interrupted
  // (a goroutine's registers, which may hold its only reference to an object): scanned with the
  // thread's stacks.
  uintptr_t interrupted_handler_hi = 0;
  // Then also the interrupted code's stack pointer, read from the kernel's frame there
  // (core/sigframe.hpp): where the live part of the stack it ran on ends; 0 if not found (the
  // stacks are then scanned whole).
  uintptr_t interrupted_sp = 0;
  // The last stop interrupted the thread wherever it was (the suspend signal), rather than at a
  // call into gort (a critical section's end, blocked_wait): regs then hold its every register.
  bool stopped_async = false;
  // A single stop (stop_thread) of an asynchronous kind may leave this set for the handler: the
  // thread then calls it on its way out of the stop, as if the interrupted instruction had
  // (core/signalcall.hpp; Go's asynchronous preemption, sched/preempt.cpp). Written by the
  // stopping thread while this one is parked, read and cleared by this one's handler.
  void (*resume_call)(void* frame) = nullptr;
  // The copy of the interrupted registers such a call put on the thread's stack, [lo, hi), from
  // the handler's return until the called function took charge of it (async_preempted, which
  // clears it): registers of the thread's in that window (the interrupted rbx and r12 are only
  // there, the trampoline holds its own in them), so scanned with the saved ones. A stop lands
  // in that window whenever the suspend signal came while the handler ran: it is delivered at
  // the trampoline's first instruction. The concurrent mark may have scanned the stack before
  // the copy was written; mark termination then reads it as registers, and checkmark as stack.
  uintptr_t injected_lo = 0, injected_hi = 0;
  // Split stacks: libgcc's segment list of the stack it was on, and the segment in use.
  void* split_segments = nullptr;
  void* split_current = nullptr;
  mcontext_t regs{};
#if defined(__x86_64__)
  // Vector registers at an asynchronous stop, scanned too: compiled code may hold a pointer only
  // in a vector register (a struct copy; with AVX or AVX-512 enabled, in the upper half of a YMM
  // or ZMM register, or in zmm16-31). The kernel's XSAVE image, its first fpregs_bytes bytes
  // (2,696 with AVX-512; a machine with AMX has its tile data cut off, which is no register a
  // pointer is kept in). None after a synchronous stop, where the ABI makes them caller-saved
  // (spilled to the stack).
  static constexpr size_t kSavedVectorBytes = 4096;
  alignas(64) unsigned char fpregs[kSavedVectorBytes];
  uint32_t fpregs_bytes = 0;
#endif
  std::atomic<uint32_t> parked_epoch{0};  // the stop-the-world epoch the thread acknowledged
  // 1 while the thread waits inside blocked_wait: it counts as stopped without a signal.
  std::atomic<uint32_t> blocked{0};
  // Stopping this thread alone (stop_thread): the number of the stop requested (0: none), and
  // the number of the last stop the thread parked for.
  std::atomic<uint32_t> single_stop{0};
  std::atomic<uint32_t> single_parked{0};
  // ThreadSanitizer builds: the single stop and the world epoch that sent this thread the stop
  // signal, set before sending it. TSan delivers the signal late, so a thread answers a stop on
  // its own (stop_requested), and only one that signaled it: a stop that found it blocked reads
  // its record meanwhile, and expects no answer.
  std::atomic<uint32_t> signaled_single{0};
  std::atomic<uint32_t> signaled_epoch{0};
  uint64_t attach_id = 0;                 // distinguishes successive users of a reused record
  pid_t tid = 0;                          // the kernel's thread id (goroutine dumps)
  // A program thread parked in a gort wait (channel, select, WaitGroup, Mutex): Go's wait
  // reason, for goroutine dumps; null otherwise.
  std::atomic<const char*> wait_reason{nullptr};
  void* m = nullptr;                      // the scheduler's M when the thread is one
  // The concurrent mark cycle in which this thread's stack was last scanned (gc/mgcmark.cpp).
  std::atomic<uint32_t> scan_gen{0};
  // Odd while the thread changes the runtime's statistics (core/statsupdate.hpp).
  std::atomic<uint32_t> stats_seq{0};
};

// The thread's allocation cache, the depth of its critical sections and whether a stop arrived
// inside one are in t_front (include/gort/internal/alloc.hpp), which make<T>'s inline allocation
// path reads; the rest is here.
struct ThreadLocal {
  ThreadRecord* record;
  bool alt_signal_stack;  // gort installed an alternate signal stack (an M)
  bool user_thread;       // counted in running_user_threads() while not blocked
  // The scan stamp of the stack this thread runs on now: its own record's, or the running
  // goroutine's (gc/mgcmark.hpp). Equal to the cycle's number once that stack is black.
  const std::atomic<uint32_t>* stack_scan_gen;
  int stats_depth;  // nesting of StatsUpdate batches (core/statsupdate.hpp)
};

// initial-exec: one instruction to reach from the library, no __tls_get_addr call.
extern thread_local constinit ThreadLocal t_local __attribute__((tls_model("initial-exec")));

// Opens every signal handler of the runtime (itself GORT_NO_SPLIT). On an M's alternate signal
// stack the split-stack guard still describes the interrupted goroutine's stack: split-stack code
// in the handler could ask libgcc to grow that stack from a signal. The guard is 0 (never grow:
// the alternate stack is big enough) until the handler returns. A thread without one keeps
// libgcc's defaults: the handler runs on its stack, which may grow, as libgcc allows there.
struct SignalStackGuard {
#if GORT_SPLIT_STACK
  uintptr_t saved;
  __attribute__((always_inline, no_split_stack)) SignalStackGuard();
  __attribute__((always_inline, no_split_stack)) ~SignalStackGuard();
#endif
};
#if GORT_SPLIT_STACK
inline SignalStackGuard::SignalStackGuard() : saved(split_guard()) {
  if (t_local.alt_signal_stack) set_split_guard(0);
}
inline SignalStackGuard::~SignalStackGuard() { set_split_guard(saved); }
#endif

void suspend_self();
// ThreadSanitizer builds: a stop that signaled this thread waits for its answer. TSan delivers
// the stop signal only at the thread's next intercepted call, so leaving a critical section and
// blocked_wait check for such a stop as well (see suspend_handler).
bool stop_requested();

// The calling frame's stack pointer (always inlined, so it is the caller's own). Conservative
// scans and scrubs start from it. Without x86-64's register read: the frame address less the
// 256 bytes a frame may use below it (more words scanned, none missed).
__attribute__((always_inline)) inline uintptr_t stack_pointer() {
#if defined(__x86_64__)
  uintptr_t sp;
  asm volatile("movq %%rsp, %0" : "=r"(sp));
  return sp;
#else
  return reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) - 256;
#endif
}

// enter_critical() and leave_critical_section() are in include/gort/internal/alloc.hpp (make<T>'s
// inline path takes them too).
// Leaves a critical section; true when the thread must stop now (suspend_self), the outermost
// section having held off a stop. For a caller that arranges the call itself (a tail call).
inline bool leave_critical_to_stop() {
  return leave_critical_section() && (t_front.suspend_pending || (kThreadSanitizer && stop_requested()));
}
inline void leave_critical() {
  if (leave_critical_to_stop()) [[unlikely]] suspend_self();
}

class CriticalSection {
 public:
  CriticalSection() { enter_critical(); }
  ~CriticalSection() { leave_critical(); }
  CriticalSection(const CriticalSection&) = delete;
  CriticalSection& operator=(const CriticalSection&) = delete;
};

// Holds a runtime lock from any thread: inside a critical section when the thread is attached
// (so it is never stopped holding it); plainly on other threads, which are never stopped.
template <class L>
class RuntimeLockGuard {
 public:
  explicit RuntimeLockGuard(L& l) : l_(l), attached_(t_local.record != nullptr) {
    if (attached_) enter_critical();
    l_.lock();
  }
  ~RuntimeLockGuard() {
    l_.unlock();
    if (attached_) leave_critical();
  }
  RuntimeLockGuard(const RuntimeLockGuard&) = delete;
  RuntimeLockGuard& operator=(const RuntimeLockGuard&) = delete;

 private:
  L& l_;
  bool attached_;
};

// Attaches / detaches the calling thread (nested calls count). `scan_stack` false marks gort's own
// service threads, which are stopped like the others but hold no managed pointers; `program`
// false a thread of the runtime's that does (the scheduler's Ms, the destructor thread): only
// the program's threads count in running_user_threads(). With `critical`, the thread returns
// inside a critical section, entered while it was being registered: no stop finds it attached
// before the caller leaves that section (AttachThread: its stack scan while a mark runs).
void attach_current_thread(bool scan_stack = true, bool program = true, bool critical = false);
void detach_current_thread();
inline bool current_thread_attached() { return t_local.record != nullptr; }

// The program's own attached threads (not gort's, not Ms) that are not blocked in a gort wait:
// as far as the collector's idle workers go, each keeps a processor busy.
int running_user_threads();
// Every attached thread: gort's own (Ms, service threads) and the program's (go_threads).
int attached_thread_count();
// The program's own attached threads (not gort's, not Ms), running or not.
int attached_program_threads();
// Every thread of the process is attached or one of gort's service threads (known by their
// kernel ids, recorded when they start): nothing outside gort can wake a goroutine. Reads /proc:
// for the deadlock check only.
bool all_threads_known();
// Around a blocking wait of an attached thread that is not a goroutine (sleep, channel, lock).
void user_thread_blocked(bool blocked);

// fork(): the child has only the thread that forked, none of the runtime's (Ms, the collector,
// sysmon, ...), and the runtime's locks may be held by threads that no longer exist there. As
// after Go's ForkExec, the child may exec or _exit; a call that needs the runtime's threads
// (spawning, waiting, a collection, an allocation's slow path) ends with a fatal error saying so
// instead of hanging. Set by a pthread_atfork handler installed with the first attach.
extern bool g_forked_child;
[[noreturn]] void fatal_in_forked_child(const char* what);
inline void check_not_forked_child(const char* what) {
  if (g_forked_child) [[unlikely]] fatal_in_forked_child(what);
}

// Zeroes the stack just below the caller's frame, where dead frames of earlier calls may still
// hold managed pointers that the conservative scan would take for live ones (Boehm GC's
// GC_clear_stack). Service threads and the finalizer goroutine call it between work items.
GORT_NO_SPLIT __attribute__((noinline)) void scrub_stack(size_t bytes = 4096);
// The same for a stack the caller is not running on (an M's, below where a call on it ended or
// where its thread was stopped): zeroes up to `bytes` below `top`, never past the stack's low end.
void scrub_stack_below(uintptr_t top, uintptr_t stack_lo, size_t bytes = 64 << 10);

// Serialises stop-the-world operations (collections, ReadMemStats).
std::mutex& world_lock();
// Held while a thread attaches or detaches, and for a whole stop-the-world.
std::mutex& registry_lock();
// How many times the world was stopped or started since the process began (tests).
uint32_t world_epoch();

// Stops every attached thread except the caller (who holds world_lock()) and records the
// caller's registers. Returns the number of threads stopped.
int stop_the_world();
void start_the_world();

// Runs wait(arg), a blocking wait in the runtime (an idle M, a service thread's sleep, a thread
// blocked on a channel, a lock or a collection), with the calling thread counted as stopped:
// stopping the world, or this thread alone, then needs no signal to it (on a machine with few
// cores, waking every sleeping thread to park it in a signal handler is what made pauses long).
// Its stack pointer, split-stack state and spilled registers are recorded first, as a stop
// records them. When the wait ends, the thread goes on only once no stop counts on it: a
// stop-the-world in progress, or a stop of this thread alone, holds it until it ends (Dekker's
// protocol: the thread clears `blocked` then reads the stop flags; a stopper sets its flag then
// reads `blocked`, with sequentially consistent operations on both sides).
void blocked_wait(void (*wait)(void*), void* arg);
template <class F>
void blocked_wait(F&& wait) {
  blocked_wait([](void* f) { (*static_cast<std::remove_reference_t<F>*>(f))(); }, &wait);
}

// Locks a mutex whose holder may stop this thread meanwhile (a stop-the-world holds the registry
// and world locks throughout). Elsewhere the stop signal interrupts the wait for the mutex; a
// ThreadSanitizer build delivers it only once the thread has the mutex, so there an attached
// thread waits for it as blocked_wait does, counted as stopped, and polls it with short sleeps:
// a stop that signaled the thread just before it counted as blocked (and whose signal it could
// not answer then, thread.cpp) has it delivered during a sleep, where TSan delivers signals (in
// pthread_mutex_lock it waited for the lock the stopper held: the suite hung, ci39).
template <class M>
void lock_stoppable(M& m) {
  if (kThreadSanitizer && t_local.record && !t_front.critical) {
    if (!m.try_lock()) blocked_wait([&m] {
      while (!m.try_lock()) {
        timespec pause{0, 20000};
        nanosleep(&pause, nullptr);
      }
    });
    return;
  }
  m.lock();
}
template <class M>
class StoppableLockGuard {
 public:
  explicit StoppableLockGuard(M& m) : m_(m) { lock_stoppable(m_); }
  ~StoppableLockGuard() { m_.unlock(); }
  StoppableLockGuard(const StoppableLockGuard&) = delete;
  StoppableLockGuard& operator=(const StoppableLockGuard&) = delete;

 private:
  M& m_;
};

// Stops one attached thread, identified by its record and attach_id, runs fn(record) while it is
// stopped (its stack pointer, split-stack state and registers recorded as for a stop-the-world),
// then resumes it. Returns false, without calling fn, if that thread detached meanwhile. The
// caller must not be attached (a mark worker): two threads stopping each other would deadlock.
// Serialised with stop_the_world and with attaching and detaching (the registry lock).
bool stop_thread(ThreadRecord* r, uint64_t attach_id, void (*fn)(ThreadRecord*, void*), void* arg);
template <class F>
bool stop_thread(ThreadRecord* r, uint64_t attach_id, F&& fn) {
  return stop_thread(r, attach_id, [](ThreadRecord* x, void* f) { (*static_cast<std::remove_reference_t<F>*>(f))(x); }, &fn);
}
// Calls fn(record) for every attached thread, under the registry lock (world running: records
// stay valid, but their threads run).
void for_each_attached(void (*fn)(ThreadRecord*, void*), void* arg);
template <class F>
void for_each_attached(F&& fn) {
  for_each_attached([](ThreadRecord* r, void* f) { (*static_cast<std::remove_reference_t<F>*>(f))(r); }, &fn);
}
// A thread stopped alone zeroes its stack below itself first (GODEBUG=gccheckmark=1).
void set_scrub_when_stopped(bool on);
bool scrub_when_stopped();
// A new attached thread starts with its scan_gen at this value (gc/mgcmark.cpp: a thread that
// attaches during a mark holds nothing unmarked yet). World stopped.
void set_attach_scan_gen(uint32_t gen);

ThreadRecord* registry_first();

// Calls fn(record) for every attached thread; only while the world is stopped.
template <class F>
void for_each_thread(F&& fn) {
  for (ThreadRecord* r = registry_first(); r; r = r->next) fn(r);
}

// Installs the suspend signal handler (once per process).
void install_suspend_handler();

// Creates one of gort's own threads with a stack it maps itself (counted in StackSys).
pthread_t start_service_thread(void* (*fn)(void*), void* arg, const char* name);
void join_service_thread(pthread_t t);

}  // namespace gort::internal
