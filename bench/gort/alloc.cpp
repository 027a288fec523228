// alloc: allocation throughput of a 16-byte object holding two managed pointers on gort.
// Each object is linked to the previous one; the chain is cut every 64 objects, so
// almost everything becomes short-lived garbage.
// Usage: bench-alloc [COUNT]   (COUNT = 50000000 by default)
// stdout: the result (identical across the gort, Go and Boehm versions)
// stderr: alloc16_ns (key=value): wall time per allocation
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

struct Obj {
  gort::Ref<Obj> a, b;
  void trace(gort::Tracer& t) const {
    t.visit(a);
    t.visit(b);
  }
};
static_assert(sizeof(Obj) == 16, "alloc measures 16-byte objects");

// The most recent complete chain is stored, every 64 allocations, into *head: a slot
// in main's stack frame (a conservatively scanned root), as Go stores it in a
// package-level variable. noinline keeps the store a real memory store.
[[gnu::noinline]] void run(long n, Obj** head) {
  Obj* prev = nullptr;
  for (long i = 0; i < n; i++) {
    Obj* o = gort::make<Obj>();
    o->a = prev;
    prev = o;
    if ((i & 63) == 63) {
      *head = prev;
      prev = nullptr;
    }
  }
  if (prev != nullptr) *head = prev;
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 50000000L;
  if (n <= 0) {
    std::fprintf(stderr, "usage: bench-alloc [COUNT]\n");
    return 2;
  }
  gort::Runtime rt;
  Obj* head = nullptr;
  auto start = std::chrono::steady_clock::now();
  run(n, &head);
  auto wall = std::chrono::steady_clock::now() - start;

  long length = 0;
  for (Obj* p = head; p != nullptr; p = p->a.get()) length++;
  std::printf("allocated %ld objects of 16 bytes, last chain length %ld\n", n, length);
  std::fflush(stdout);
  std::fprintf(stderr, "alloc16_ns=%.2f\n",
               std::chrono::duration<double, std::nano>(wall).count() / double(n));
  return 0;
}
