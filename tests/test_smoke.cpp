#include <doctest/doctest.h>
#include <gort/gort.hpp>

namespace {
struct Node {
  gort::Ref<Node> left, right;
  void trace(gort::Tracer& t) const { t.visit(left); t.visit(right); }
};
Node* build(int d) {
  Node* n = gort::make<Node>();
  if (d > 0) { n->left = build(d - 1); n->right = build(d - 1); }
  return n;
}
int count(Node* n) { return n ? 1 + count(n->left) + count(n->right) : 0; }
}  // namespace

TEST_CASE("smoke: trees survive collections") {
  Node* keep = build(12);
  for (int i = 0; i < 50; ++i) {
    Node* t = build(10);
    CHECK(count(t) == 2047);
  }
  gort::GC();
  CHECK(count(keep) == 8191);
  gort::MemStats ms;
  gort::ReadMemStats(&ms);
  CHECK(ms.NumGC > 0);
}
