// gcbench: the Ellis/Kovac/Boehm GCBench on gort.
// stdout: the result (identical across the gort, Go and Boehm versions)
// stderr: wall_ms (key=value)
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>

namespace {

constexpr int kStretchTreeDepth = 18;    // about 16Mb
constexpr int kLongLivedTreeDepth = 16;  // about 4Mb
constexpr int kArraySize = 500000;       // about 4Mb
constexpr int kMinTreeDepth = 4;
constexpr int kMaxTreeDepth = 16;

struct Node {
  gort::Ref<Node> left, right;
  int i = 0, j = 0;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};

// Nodes in a complete binary tree of the given depth.
int tree_size(int i) { return (1 << (i + 1)) - 1; }

// Number of trees of the given depth to build.
int num_iters(int i) { return 2 * tree_size(kStretchTreeDepth) / tree_size(i); }

// Builds a tree top-down.
void populate(int depth, Node* n) {
  if (depth <= 0) return;
  depth--;
  n->left = gort::make<Node>();
  n->right = gort::make<Node>();
  populate(depth, n->left.get());
  populate(depth, n->right.get());
}

// Builds a tree bottom-up.
Node* make_tree(int depth) {
  if (depth <= 0) return gort::make<Node>();
  Node* l = make_tree(depth - 1);
  Node* r = make_tree(depth - 1);
  Node* n = gort::make<Node>();
  n->left = l;
  n->right = r;
  return n;
}

int count_nodes(const Node* n) {
  if (n == nullptr) return 0;
  return 1 + count_nodes(n->left.get()) + count_nodes(n->right.get());
}

// Mirrors the Go/Boehm versions' sink store. It is only ever written (set, then
// cleared), never read, so it need not be a gort::Root.
Node* volatile sink;

void time_construction(int depth) {
  int iters = num_iters(depth);
  std::printf("Creating %d trees of depth %d\n", iters, depth);
  for (int i = 0; i < iters; i++) {
    Node* t = gort::make<Node>();
    populate(depth, t);
    sink = t;
    sink = nullptr;
  }
  std::printf("\tTop down construction done\n");
  for (int i = 0; i < iters; i++) {
    sink = make_tree(depth);
    sink = nullptr;
  }
  std::printf("\tBottom up construction done\n");
}

}  // namespace

int main() {
  gort::Runtime rt;
  auto start = std::chrono::steady_clock::now();

  std::printf("Garbage Collector Test\n");
  std::printf(" Stretching memory with a binary tree of depth %d\n", kStretchTreeDepth);
  sink = make_tree(kStretchTreeDepth);
  sink = nullptr;

  std::printf(" Creating a long-lived binary tree of depth %d\n", kLongLivedTreeDepth);
  Node* long_lived = gort::make<Node>();  // on main's stack: scanned conservatively
  populate(kLongLivedTreeDepth, long_lived);

  std::printf(" Creating a long-lived array of %d doubles\n", kArraySize);
  gort::Array<double>* array = gort::make_array<double>(kArraySize);  // zeroed, pointer-free
  double* a = array->data();
  for (int i = 0; i < kArraySize / 2; i++) a[i] = 1.0 / i;

  for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) time_construction(d);

  int nodes = count_nodes(long_lived);
  bool ok = static_cast<long long>(array->size()) == kArraySize &&
            (*array)[1000] == 1.0 / 1000.0 && (*array)[kArraySize / 2] == 0 &&
            nodes == tree_size(kLongLivedTreeDepth);
  auto wall = std::chrono::steady_clock::now() - start;
  std::printf("long-lived tree nodes: %d\n", nodes);
  std::printf("check: %s\n", ok ? "ok" : "FAILED");
  std::fflush(stdout);
  std::fprintf(stderr, "wall_ms=%.1f\n", std::chrono::duration<double, std::milli>(wall).count());
  return ok ? 0 : 1;
}
