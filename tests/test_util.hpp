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
#include "memstats_identities.hpp"

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

inline void check_identities(const gort::MemStats& m) {
  const char* broken = broken_identity(m);
  CHECK_MESSAGE(broken == nullptr, (broken ? broken : ""));
}

}  // namespace gort_test
