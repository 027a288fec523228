// Misuse that must end the program with a clear fatal error, as Go's runtime throws: each case is
// run by the suite in a child process (tests/test_alloc.cpp), which checks the exit status and
// the message. Usage: bad-input CASE. Exit status 0 means the misuse went unnoticed.
#include <gort/gort.hpp>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  gort::Runtime rt;
  if (std::strcmp(argv[1], "huge-allocate") == 0) {
    // More than the 48-bit address space: Go's "out of memory". Its page count would wrap.
    void* p = gort::internal::allocate(size_t{1} << 49, 0, true);
    std::printf("%p\n", p);
    return 0;
  }
  if (std::strcmp(argv[1], "wrapping-allocate") == 0) {
    void* p = gort::internal::allocate(~size_t{0} - 100, 0, true);  // size + page - 1 wraps
    std::printf("%p\n", p);
    return 0;
  }
  return 2;
}
