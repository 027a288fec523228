// A program built against an installed gort, the way an embedding project builds: with CMake
// (find_package(gort), cmake/) or with meson and pkg-config (meson/). It runs goroutines that
// allocate, collects, and checks what ReadMemStats says; exit status 0 when all is well.
#include <gort/gort.hpp>

#include <cstdio>
#include <optional>

namespace {
struct Node {
  gort::Ref<Node> left, right;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};

Node* tree(int depth) {
  Node* n = gort::make<Node>();
  if (depth > 0) {
    n->left = tree(depth - 1);
    n->right = tree(depth - 1);
  }
  return n;
}

long count(const Node* n) { return n ? 1 + count(n->left.get()) + count(n->right.get()) : 0; }
}  // namespace

int main() {
  gort::Runtime rt;
  gort::Chan<long> results(4);
  for (int g = 0; g < 4; ++g) {
    gort::go([results]() mutable {
      long sum = 0;
      for (int i = 0; i < 20; ++i) sum += count(tree(10));
      results.send(sum);
    });
  }
  long total = 0;
  for (int g = 0; g < 4; ++g) total += results.recv().value_or(0);
  gort::GC();
  gort::MemStats ms;
  gort::ReadMemStats(&ms);
  bool ok = total == 4L * 20 * 2047 && ms.NumGC >= 1 && ms.Mallocs >= 4u * 20 * 2047 &&
            ms.Sys == ms.HeapSys + ms.StackSys + ms.MSpanSys + ms.MCacheSys + ms.BuckHashSys + ms.GCSys + ms.OtherSys;
  std::printf("consumer: %ld nodes counted, NumGC %u, Mallocs %llu: %s\n", total, unsigned(ms.NumGC),
              static_cast<unsigned long long>(ms.Mallocs), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
