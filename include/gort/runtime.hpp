// Starting gort and attaching threads to it.
#pragma once
#include <utility>

namespace gort {

struct Options {
  int gomaxprocs = 0;  // 0: from GOMAXPROCS, else the number of hardware threads
};

// Starts the runtime and attaches the calling thread. Reads GOGC, GOMEMLIMIT, GOMAXPROCS and
// GODEBUG as Go does. The destructor stops the runtime's threads; objects stay valid until exit,
// and a later Runtime continues with the same heap. One Runtime at a time per process.
class Runtime {
 public:
  Runtime();
  explicit Runtime(const Options& opts);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};

// Lets the current OS thread allocate managed objects and hold managed pointers on its stack
// (it is scanned, and stopped by collections through a signal: do not block SIGPWR on it).
// Nested guards on one thread are allowed.
class AttachThread {
 public:
  AttachThread();
  ~AttachThread();
  AttachThread(const AttachThread&) = delete;
  AttachThread& operator=(const AttachThread&) = delete;
};

// Keeps the object p points to reachable at least until this call (Go's runtime.KeepAlive): the
// pointer is held in a register up to here, where the conservative stack scan sees it.
template <class T>
inline void KeepAlive(T* p) {
  asm volatile("" : : "r"(p) : "memory");
}

}  // namespace gort
