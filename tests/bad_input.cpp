// Misuse that must end in a clear error: each case runs in a child process of the suite
// (tests/test_alloc.cpp, test_pacer.cpp), which checks the exit status and the message.
// Usage: bad-input CASE. Exit status 0 means the misuse went unnoticed, unless the case says
// otherwise.
#include <gort/gort.hpp>

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace {
int allocate_bytes(size_t size) {
  gort::Runtime rt;
  void* p = gort::internal::allocate(size, 0, true);
  std::printf("%p\n", p);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const char* c = argv[1];
  // More than the 48-bit address space: Go's "out of memory". Its page count would wrap.
  if (std::strcmp(c, "huge-allocate") == 0) return allocate_bytes(size_t{1} << 49);
  if (std::strcmp(c, "wrapping-allocate") == 0) return allocate_bytes(~size_t{0} - 100);
  // The environment as the runtime reads it at start: exit 3 when Runtime's constructor throws
  // std::invalid_argument (its message on stderr), 0 when the runtime runs.
  if (std::strcmp(c, "start") == 0) {
    try {
      gort::Runtime rt;
      gort::GC();
      return 0;
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "invalid_argument: %s\n", e.what());
      return 3;
    }
  }
  return 2;
}
