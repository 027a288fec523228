// Helpers shared by the test files: clean collections, MemStats snapshots and their identities.
#pragma once
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <limits.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>
#include <string>
#include <thread>
#include <type_traits>

#include "runtime/core/thread.hpp"
#include "runtime/gc/mfinal.hpp"
#include "runtime/gc/sweep.hpp"

// Readable failure messages for std::optional values (env parsing).
namespace doctest {
template <class T>
struct StringMaker<std::optional<T>> {
  static String convert(const std::optional<T>& o) {
    if (!o) return "nullopt";
    if constexpr (std::is_arithmetic_v<T>) return std::to_string(*o).c_str();
    else if constexpr (std::is_pointer_v<T>) return *o ? "a pointer" : "nullptr";
    else {
      // Appended piecewise: GCC 12's -Wrestrict misfires on "x" + std::string at -O3.
      std::string s(1, '"');
      s.append(*o);
      s.push_back('"');
      return s.c_str();
    }
  }
};
template <>
struct StringMaker<std::nullopt_t> {
  static String convert(std::nullopt_t) { return "nullopt"; }
};
}  // namespace doctest

namespace gort_test {

// Waits (polling every millisecond) until pred holds; false after the timeout.
template <class P>
bool eventually(P pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Sets GOMAXPROCS for a test's scope and puts the previous value back.
struct RestoreProcs {
  int old;
  explicit RestoreProcs(int n) : old(gort::GOMAXPROCS(n)) {}
  ~RestoreProcs() { gort::GOMAXPROCS(old); }
};

// A binary tree whose every node's value follows from the root's (children 2v and 2v+1), so a
// node freed and reused, or overwritten, is detected.
struct TreeNode {
  gort::Ref<TreeNode> left, right;
  int64_t value = 0;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};
inline TreeNode* build_tree(int depth, int64_t value) {
  TreeNode* n = gort::make<TreeNode>();
  n->value = value;
  if (depth > 0) {
    n->left = build_tree(depth - 1, value * 2);
    n->right = build_tree(depth - 1, value * 2 + 1);
  }
  return n;
}
// True when the tree has exactly the shape and values build_tree(depth, value) gave it.
inline bool check_tree(const TreeNode* n, int depth, int64_t value) {
  if (!n || n->value != value) return false;
  if (depth == 0) return !n->left && !n->right;
  return check_tree(n->left.get(), depth - 1, value * 2) && check_tree(n->right.get(), depth - 1, value * 2 + 1);
}

// Runs `program` (built next to the test binary, e.g. "checkmark-fault") with `args` and with
// `env` (VAR=value ...) added to the environment: its exit status as the shell reports it
// (128 + N for a signal N) and everything it wrote to stderr.
inline std::pair<int, std::string> run_sibling(const std::string& program, const std::string& args = "",
                                               const std::string& env = "") {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  std::string dir(exe, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/'));
  std::string cmd = "env " + env + " '" + dir + "/" + program + "' " + args + " 2>&1 >/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string err;
  char buf[4096];
  for (size_t k; (k = fread(buf, 1, sizeof buf, p)) > 0;) err.append(buf, k);
  int status = pclose(p);
  return {status, err};
}

// Zeroes a large stretch of the stack below the caller's frame, so that pointers left behind in
// dead frames (conservative scanning) cannot keep garbage alive in the next collection.
inline void clobber_stack() { gort::internal::scrub_stack(64 << 10); }

// A forced collection after wiping dead stack frames.
inline void clean_gc() {
  clobber_stack();
  gort::GC();
}

// Value-initialized, so that its padding holds no stale stack words: a heap address's upper half
// left in the padding next to a small field (BySize[i].Size) reads as a pointer into the heap to
// the conservative scan, and keeps an object alive.
inline gort::MemStats read_stats() {
  gort::MemStats m{};
  gort::ReadMemStats(&m);
  return m;
}

// Collects until no destructor, finalizer or cleanup is queued or running (objects with
// destructors need a later cycle to be freed; finalizers may allocate), so that what follows sees
// only its own allocations and a following GC() leaves only reachable objects. False on timeout.
inline bool quiesce(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto idle = [] {
    return gort::internal::pending_destructors() == 0 && gort::internal::pending_finalizers() == 0;
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    clean_gc();
    if (idle()) {
      // Let a destructor that was just popped finish, then free its slot.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      clean_gc();
      clean_gc();
      if (idle()) return true;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Go's first 61 size classes: the sizes MemStats.BySize reports.
inline constexpr uint32_t kBySizeSizes[61] = {
    0,    8,    16,   24,   32,   48,   64,   80,    96,    112,   128,   144,   160,   176,   192,  208,
    224,  240,  256,  288,  320,  352,  384,  416,   448,   480,   512,   576,   640,   704,   768,  896,
    1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304,  2688,  3072,  3200,  3456,  4096,  4864,  5376, 6144,
    6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432};

// Every identity that holds within one snapshot (docs/memstats.md, "Identities"): the first one
// `m` breaks, or null. No allocation, no libstdc++: goroutines check their own snapshots.
inline const char* broken_identity(const gort::MemStats& m) {
  if (m.Sys != m.HeapSys + m.StackSys + m.MSpanSys + m.MCacheSys + m.BuckHashSys + m.GCSys + m.OtherSys)
    return "Sys == sum of *Sys";
  if (m.HeapIdle + m.HeapInuse != m.HeapSys) return "HeapIdle + HeapInuse == HeapSys";
  if (m.HeapReleased > m.HeapIdle) return "HeapReleased <= HeapIdle";
  if (m.Alloc != m.HeapAlloc) return "Alloc == HeapAlloc";
  if (m.HeapAlloc > m.HeapInuse) return "HeapAlloc <= HeapInuse";
  if (m.HeapAlloc > m.TotalAlloc) return "HeapAlloc <= TotalAlloc";
  if (m.HeapObjects != m.Mallocs - m.Frees) return "HeapObjects == Mallocs - Frees";
  if (m.Frees > m.Mallocs) return "Frees <= Mallocs";
  if (m.StackInuse > m.StackSys) return "StackInuse <= StackSys";
  if (m.MSpanInuse > m.MSpanSys) return "MSpanInuse <= MSpanSys";
  if (m.MCacheInuse > m.MCacheSys) return "MCacheInuse <= MCacheSys";
  if (m.Lookups != 0 || !m.EnableGC || m.DebugGC) return "Lookups, EnableGC, DebugGC";
  if (!(m.GCCPUFraction >= 0.0 && m.GCCPUFraction <= 1.0)) return "0 <= GCCPUFraction <= 1";
  if (m.NumForcedGC > m.NumGC) return "NumForcedGC <= NumGC";
  if (m.NumGC > 0 ? m.LastGC != m.PauseEnd[(m.NumGC + 255) % 256] : m.LastGC != 0)
    return "LastGC == PauseEnd[(NumGC+255)%256]";
  uint64_t pauses = 0;
  for (uint64_t p : m.PauseNs) pauses += p;
  if (m.NumGC < 256) {
    if (m.PauseTotalNs != pauses) return "PauseTotalNs == sum of PauseNs";
    for (uint32_t i = m.NumGC; i < 256; ++i)  // ring entries of cycles that have not happened yet
      if (m.PauseNs[i] != 0 || m.PauseEnd[i] != 0) return "PauseNs/PauseEnd zero past NumGC";
  } else if (m.PauseTotalNs < pauses) {
    return "PauseTotalNs >= sum of PauseNs";
  }
  uint64_t by_mallocs = 0, by_frees = 0, by_bytes = 0;
  for (int i = 0; i < 61; ++i) {
    if (m.BySize[i].Size != kBySizeSizes[i]) return "BySize sizes";
    if (m.BySize[i].Frees > m.BySize[i].Mallocs) return "BySize[i].Frees <= BySize[i].Mallocs";
    by_mallocs += m.BySize[i].Mallocs;
    by_frees += m.BySize[i].Frees;
    by_bytes += m.BySize[i].Mallocs * m.BySize[i].Size;
  }
  if (m.BySize[0].Mallocs != 0 || m.BySize[0].Frees != 0) return "BySize[0] empty";
  if (by_mallocs > m.Mallocs) return "sum of BySize Mallocs <= Mallocs";
  if (by_frees > m.Frees) return "sum of BySize Frees <= Frees";
  if (by_bytes > m.TotalAlloc) return "sum of BySize bytes <= TotalAlloc";
  return nullptr;
}

inline void check_identities(const gort::MemStats& m) {
  const char* broken = broken_identity(m);
  CHECK_MESSAGE(broken == nullptr, (broken ? broken : ""));
}

}  // namespace gort_test
