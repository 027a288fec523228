#include "runtime/core/sysmem.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gort::internal {

namespace {
[[noreturn]] __attribute__((noinline)) void fatal_with(const char* fmt, va_list ap) {
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  fprintf(stderr, "gort: fatal error: %s\n", buf);
  fflush(stderr);
  abort();
}
}  // namespace

void fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fatal_with(fmt, ap);
}

void* sys_alloc(size_t bytes, SysStat& stat) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fatal("out of memory: mmap of %zu bytes failed: %s", bytes, strerror(errno));
  stat.add(static_cast<int64_t>(bytes));
  return p;
}

void sys_free(void* p, size_t bytes, SysStat& stat) {
  munmap(p, bytes);
  stat.add(-static_cast<int64_t>(bytes));
}

void* sys_reserve(void* hint, size_t bytes) {
  void* p = mmap(hint, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void sys_unreserve(void* p, size_t bytes) { munmap(p, bytes); }

void sys_map(void* p, size_t bytes, SysStat& stat) {
  void* q = mmap(p, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (q == MAP_FAILED) fatal("out of memory: mapping %zu heap bytes failed: %s", bytes, strerror(errno));
  stat.add(static_cast<int64_t>(bytes));
}

bool sys_try_map(void* p, size_t bytes, SysStat& stat) {
  void* q = mmap(p, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (q == MAP_FAILED) return false;
  stat.add(static_cast<int64_t>(bytes));
  return true;
}

void sys_unused(void* p, size_t bytes) { madvise(p, bytes, MADV_DONTNEED); }

}  // namespace gort::internal
