// Which code a preemption may interrupt (see preempt.hpp): the classification of addresses, the
// verdicts learnt so far, and the thread that learns them.
#include "runtime/sched/preempt.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/lock.hpp"
#include "runtime/core/os.hpp"
#include "runtime/core/sanitizer.hpp"
#include "runtime/core/symbolize.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/sched/cxxcall.hpp"

namespace gort::internal {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Libraries of the system (libc, libstdc++, libgcc_s, the dynamic loader, Boost.Context) and
// gort's own shared library: nothing in them is preemptible. A program's library installed
// under /usr/lib counts as the system's too (conservatively: it is then not preempted).
bool system_or_runtime_object(const std::string& file) {
  for (std::string_view dir : {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/"})
    if (starts_with(file, dir)) return true;
  if (file.find("linux-vdso") != std::string::npos) return true;
  size_t slash = file.rfind('/');
  return starts_with(std::string_view(file).substr(slash == std::string::npos ? 0 : slash + 1), "libgort");
}

// A function of the runtime (mangled names: gort's namespaces, the runtime's assembly helpers),
// of the libraries the runtime runs on goroutines with locks held (cpp-httplib for the monitor,
// spdlog and fmt for its log; they count as the runtime's where it is linked statically), or of
// libgcc's split-stack support, which a stop may find halfway through a stack switch, or of the
// C and C++ runtimes' entry points gort defines (operator new and delete, _Unwind_Resume,
// memcpy..., snprintf, libstdc++'s throw helpers: sched/cxxcall.hpp; a program's own
// replacements of them are not preempted either).
bool runtime_or_morestack_symbol(const std::string& mangled) {
  if (stand_in_symbol(mangled)) return true;
  for (std::string_view p : {"_ZN4gort", "_ZNK4gort", "_ZZN4gort",
                             "_ZZNK4gort", "gort_", "_ZN7httplib", "_ZNK7httplib", "_ZZN7httplib", "_ZN6spdlog",
                             "_ZNK6spdlog", "_ZN3fmt", "_ZNK3fmt", "__morestack", "__generic_morestack",
                             "__generic_releasestack", "__splitstack_", "__stack_split_"})
    if (starts_with(mangled, p)) return true;
  return false;
}

// Sanitizer builds (./run sanitize) link the sanitizer's runtime into the program: its allocator
// and its interceptors of libc keep per-thread state, which another goroutine of the same thread
// would find half-changed. Its functions (C names, its namespaces) and its interceptors, which
// carry libc's names ("malloc" is an alias of "__interceptor_malloc": the symbol table may give
// either), and its replacements of operator new and delete, are not preemptible.
bool sanitizer_runtime_symbol([[maybe_unused]] const std::string& mangled, [[maybe_unused]] uintptr_t start) {
  if constexpr (!kSanitized) return false;
  for (std::string_view p : {"__asan", "__ubsan", "__tsan", "__lsan", "__sanitizer", "__interceptor_", "__interception",
                             "_ZN6__asan", "_ZN7__ubsan", "_ZN6__tsan", "_ZN6__lsan", "_ZN11__sanitizer", "_ZN14__interception"})
    if (starts_with(mangled, p)) return true;
  // ASan and TSan replace operator new and delete in the program itself, with no alias.
  for (std::string_view p : {"_Znw", "_Zna", "_Zdl", "_Zda"})
    if (starts_with(mangled, p)) return true;
  void* interceptor = dlsym(RTLD_DEFAULT, ("__interceptor_" + mangled).c_str());
  return interceptor && reinterpret_cast<uintptr_t>(interceptor) == start;
}

// The bodies that public headers wrap around the program's code, which the compiler usually
// inlines into them: a goroutine's function (go() and GoClosure<F>::call) and a finalizer's or
// cleanup's (ClosureOf<F>::call). They hold nothing of the runtime's.
bool program_body_in_header(const std::string& demangled) {
  for (std::string_view p : {"gort::internal::GoClosure<", "gort::internal::ClosureOf<", "gort::go<"})
    if (starts_with(demangled, p)) return true;
  return false;
}

struct Classified {
  bool preemptible = false;
  uintptr_t lo = 0, hi = 0;  // the addresses the verdict holds for
};

Classified classify(uintptr_t pc) {
  Classified c{false, pc, pc + 1};
  const CodeMapping* in = nullptr;
  std::vector<CodeMapping> maps = code_mappings();
  for (const CodeMapping& m : maps)
    if (pc >= m.start && pc < m.limit) in = &m;
  if (!in) return c;  // not code of a loaded object (generated code, or the vDSO)
  if (system_or_runtime_object(in->file)) return {false, in->start, in->limit};
  CodeSymbol sym = symbol_containing(pc);
  if (sym.name.empty()) return c;
  if (sym.size > 0 && pc >= sym.start && pc - sym.start < sym.size) {
    c.lo = sym.start;
    c.hi = sym.start + sym.size;
  }
  if (sanitizer_runtime_symbol(sym.name, sym.start)) return c;
  c.preemptible = program_body_in_header(demangle_name(sym.name)) || !runtime_or_morestack_symbol(sym.name);
  return c;
}

struct Range {
  uintptr_t lo, hi;
  bool preemptible;
};

// Verdicts, sorted by lo and disjoint. Written by the classifier thread; sysmon reads them while
// it holds a thread stopped, so it only try_locks (a busy lock reads as "unknown").
SpinLock g_verdicts_lock;
std::vector<Range> g_verdicts;
constexpr size_t kMaxVerdicts = 1 << 16;

// Addresses sysmon asked about, for the classifier thread.
SpinLock g_queue_lock;
constexpr int kQueue = 16;
uintptr_t g_queue[kQueue];
int g_queued = 0;
std::atomic<uint32_t> g_wake{0};    // bumped when an address is queued (or to stop)
std::atomic<uint32_t> g_learnt{0};  // bumped when verdicts were added
std::atomic<bool> g_stop{false};
pthread_t g_thread;
bool g_running = false;

// The first range that starts after pc.
std::vector<Range>::iterator first_after(uintptr_t pc) {
  return std::upper_bound(g_verdicts.begin(), g_verdicts.end(), pc, [](uintptr_t a, const Range& r) { return a < r.lo; });
}

CodeVerdict lookup_locked(uintptr_t pc) {
  auto it = first_after(pc);
  if (it == g_verdicts.begin()) return CodeVerdict::Unknown;
  --it;
  if (pc >= it->hi) return CodeVerdict::Unknown;
  return it->preemptible ? CodeVerdict::Preemptible : CodeVerdict::NotPreemptible;
}

void insert_locked(Classified c, uintptr_t pc) {
  if (lookup_locked(pc) != CodeVerdict::Unknown) return;
  if (g_verdicts.size() >= kMaxVerdicts) g_verdicts.clear();  // a program that jumps everywhere: start over
  // Keep the ranges disjoint: a symbol's range may overlap one learnt before (aliases, or a
  // single address of a function without a size): trim the new range to pc's gap.
  auto next = first_after(pc);
  if (next != g_verdicts.end()) c.hi = std::min(c.hi, next->lo);
  if (next != g_verdicts.begin()) c.lo = std::max(c.lo, std::prev(next)->hi);
  g_verdicts.insert(next, Range{c.lo, c.hi, c.preemptible});
}

// The classifier thread: reads symbol tables for the addresses sysmon queued. Its own thread, so
// that sysmon (which fires timers) never waits for a symbol table: libbacktrace reads every
// loaded object's at its first use, a few hundred milliseconds in a large program.
void* classifier_main(void*) {
  for (;;) {
    uint32_t wake = g_wake.load(std::memory_order_acquire);
    uintptr_t pcs[kQueue];
    int n;
    {
      LockGuard g(g_queue_lock);
      n = g_queued;
      std::copy(g_queue, g_queue + n, pcs);
      g_queued = 0;
    }
    if (n == 0) {
      if (g_stop.load(std::memory_order_acquire)) return nullptr;
      futex_wait(&g_wake, wake);
      continue;
    }
    for (int i = 0; i < n; ++i) {
      Classified c = classify(pcs[i]);
      LockGuard g(g_verdicts_lock);
      insert_locked(c, pcs[i]);
    }
    g_learnt.fetch_add(1, std::memory_order_release);
    futex_wake(&g_learnt);
  }
}

}  // namespace

bool preemptible_code(uintptr_t pc) { return classify(pc).preemptible; }

CodeVerdict preempt_cached_verdict(uintptr_t pc) {
  if (!g_verdicts_lock.try_lock()) return CodeVerdict::Unknown;
  CodeVerdict v = lookup_locked(pc);
  g_verdicts_lock.unlock();
  return v;
}

void preempt_learn(uintptr_t pc, int64_t wait_ns) {
  if (!g_running) return;
  uint32_t learnt = g_learnt.load(std::memory_order_acquire);
  {
    LockGuard g(g_queue_lock);
    if (g_queued == kQueue || std::find(g_queue, g_queue + g_queued, pc) != g_queue + g_queued) return;
    g_queue[g_queued++] = pc;
  }
  g_wake.fetch_add(1, std::memory_order_release);
  futex_wake(&g_wake, 1);
  futex_wait(&g_learnt, learnt, wait_ns);
}

void preempt_start() {
  if (g_running) return;
  g_stop.store(false, std::memory_order_relaxed);
  g_thread = start_service_thread(classifier_main, nullptr, "gort-preempt");
  g_running = true;
}

void preempt_stop() {
  if (!g_running) return;
  g_stop.store(true, std::memory_order_release);
  g_wake.fetch_add(1, std::memory_order_release);
  futex_wake(&g_wake);
  join_service_thread(g_thread);
  g_running = false;
}

}  // namespace gort::internal
