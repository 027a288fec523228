// Which code a preemption may interrupt (see preempt.hpp): the classification of addresses and
// sysmon's cache of verdicts.
#include "runtime/sched/preempt.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/symbolize.hpp"

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
// libgcc's split-stack support, which a stop may find halfway through a stack switch.
bool runtime_or_morestack_symbol(const std::string& mangled) {
  for (std::string_view p : {"_ZN4gort", "_ZNK4gort", "_ZZN4gort", "_ZZNK4gort", "gort_", "_ZN7httplib", "_ZNK7httplib",
                             "_ZZN7httplib", "_ZN6spdlog", "_ZNK6spdlog", "_ZN3fmt", "_ZNK3fmt", "__morestack",
                             "__generic_morestack", "__generic_releasestack", "__splitstack_", "__stack_split_"})
    if (starts_with(mangled, p)) return true;
  return false;
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
  c.preemptible = program_body_in_header(demangle_name(sym.name)) || !runtime_or_morestack_symbol(sym.name);
  return c;
}

struct Range {
  uintptr_t lo, hi;
  bool preemptible;
};
std::vector<Range> g_verdicts;  // sorted by lo, disjoint; sysmon's thread only
constexpr size_t kMaxVerdicts = 1 << 16;

}  // namespace

bool preemptible_code(uintptr_t pc) { return classify(pc).preemptible; }

CodeVerdict preempt_cached_verdict(uintptr_t pc) {
  auto it = std::upper_bound(g_verdicts.begin(), g_verdicts.end(), pc, [](uintptr_t a, const Range& r) { return a < r.lo; });
  if (it == g_verdicts.begin()) return CodeVerdict::Unknown;
  --it;
  if (pc >= it->hi) return CodeVerdict::Unknown;
  return it->preemptible ? CodeVerdict::Preemptible : CodeVerdict::NotPreemptible;
}

void preempt_learn(uintptr_t pc) {
  if (preempt_cached_verdict(pc) != CodeVerdict::Unknown) return;
  if (g_verdicts.size() >= kMaxVerdicts) g_verdicts.clear();  // a program that jumps everywhere: start over
  Classified c = classify(pc);
  // Keep the ranges disjoint: a symbol's range may overlap one learnt before (aliases, or a
  // single address of a function without a size): trim the new range to pc's gap.
  auto next = std::upper_bound(g_verdicts.begin(), g_verdicts.end(), pc, [](uintptr_t a, const Range& r) { return a < r.lo; });
  if (next != g_verdicts.end()) c.hi = std::min(c.hi, next->lo);
  if (next != g_verdicts.begin()) c.lo = std::max(c.lo, std::prev(next)->hi);
  g_verdicts.insert(next, Range{c.lo, c.hi, c.preemptible});
}

}  // namespace gort::internal
