// Stress: 8 goroutines mutate private random graphs while the main thread collects in a loop
// (the program of issue #8, as a user writes it).
//
// Nodes have three Ref fields and sometimes a pointer-free Array<uint64_t> payload; each worker
// relinks, drops, makes cycles, keeps some nodes in Roots and hands whole subgraphs over a
// buffered channel to a consumer goroutine (after which it never touches them again). Every
// 2,000 steps a worker checks the contents of everything its graph reaches and yields; the
// consumer checks each graph it receives. The worker's function owns std::vectors (it calls
// libstdc++), so with segmented stacks it runs on a __morestack segment, where its graph's root
// lives. Exit status 1 on any corrupt node.
//
// usage: stress-graph-mutator [seconds=4] [ms between collections=1]
#include <gort/gort.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

struct Node {
  gort::Ref<Node> a, b, c;
  gort::Ref<gort::Array<uint64_t>> payload;
  uint64_t id = 0, check = 0;
  void trace(gort::Tracer& t) const {
    t.visit(a);
    t.visit(b);
    t.visit(c);
    t.visit(payload);
  }
};

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

struct Rng {  // xorshift64
  uint64_t s;
  uint64_t operator()() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

Node* new_node(uint64_t id, Rng& rng) {
  Node* n = gort::make<Node>();
  n->id = id;
  n->check = mix(id);
  if (rng() % 4 == 0) {
    auto* p = gort::make_array<uint64_t>(4 + rng() % 60);
    for (size_t i = 0; i < p->size(); ++i) (*p)[i] = mix(id + i);
    n->payload = p;
  }
  return n;
}

std::atomic<bool> stop{false};
std::atomic<int> corrupt{0};
std::atomic<long> steps_total{0};

// Checks up to 4,000 nodes reachable from root. The vectors are not scanned by the collector:
// every node they hold is reachable from root, which nobody changes meanwhile.
bool verify(const char* who, Node* root, std::vector<Node*>& todo, std::vector<Node*>& seen) {
  todo.clear();
  seen.clear();
  if (root) todo.push_back(root);
  while (!todo.empty()) {
    Node* n = todo.back();
    todo.pop_back();
    bool ok = n->check == mix(n->id);
    if (ok && n->payload) {
      for (size_t i = 0; ok && i < n->payload->size(); ++i) ok = (*n->payload)[i] == mix(n->id + i);
    }
    if (!ok) {
      std::fprintf(stderr, "graph-mutator: %s found a corrupt node %p (id %llx) in the graph of %p\n", who,
                   static_cast<void*>(n), static_cast<unsigned long long>(n->id), static_cast<void*>(root));
      corrupt.fetch_add(1);
      return false;
    }
    if (seen.size() >= 4000) continue;
    seen.push_back(n);
    for (Node* k : {n->a.get(), n->b.get(), n->c.get()})
      if (k) todo.push_back(k);
  }
  return true;
}

void worker(int w, gort::Chan<Node*> out, gort::WaitGroup* done) {
  Rng rng{static_cast<uint64_t>(w) * 7919 + 1};
  std::vector<Node*> todo, seen;
  uint64_t id = (static_cast<uint64_t>(w) << 40) + 1;
  Node* cur = new_node(id++, rng);
  gort::Root<Node> kept[4];
  long steps = 0;
  while (!stop.load(std::memory_order_relaxed) && corrupt.load(std::memory_order_relaxed) == 0) {
    Node* n = new_node(id++, rng);
    if (rng() % 5000 == 0) cur = n;  // drop the whole graph
    switch (rng() % 8) {
      case 0: n->a = cur; cur = n; break;
      case 1: cur->a = n; break;
      case 2: cur->b = n; n->c = cur; break;  // a cycle
      case 3: if (cur->a) cur = cur->a; else cur->a = n; break;
      case 4: n->b = cur->b; cur->b = n; break;
      case 5:
        if (rng() % 16 == 0) {  // hand the graph over; the consumer owns it from now on
          // A node of its own to go on from: not n, which is cur itself when this step also
          // dropped the graph (cur = n above), and then went to the consumer with it (a data
          // race ThreadSanitizer reported once: the worker linked nodes into n while the
          // consumer read it).
          out.send(cur);
          cur = new_node(id++, rng);
          for (auto& k : kept) k.reset();
        } else {
          cur->c = n;
        }
        break;
      case 6: kept[rng() % 4] = n; n->a = cur; break;
      case 7: if (Node* k = kept[rng() % 4].get()) { k->b = cur; cur = k; } break;
    }
    if (++steps % 2000 == 0) {
      verify("a worker", cur, todo, seen);
      for (auto& k : kept)
        if (k) verify("a worker's root", k.get(), todo, seen);
      gort::Gosched();
    }
  }
  steps_total.fetch_add(steps);
  done->Done();
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 4;
  const int gc_ms = argc > 2 ? std::atoi(argv[2]) : 1;
  gort::Runtime rt;
  gort::Chan<Node*> graphs(16);
  gort::WaitGroup workers, consumer;
  workers.Add(8);
  consumer.Add(1);
  for (int w = 0; w < 8; ++w) gort::go(worker, w, graphs, &workers);
  gort::go([graphs, &consumer]() mutable {
    std::vector<Node*> todo, seen;
    while (auto g = graphs.recv()) verify("the consumer", *g, todo, seen);
    consumer.Done();
  });
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int collections = 0;
  while (std::chrono::steady_clock::now() < end && corrupt.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(gc_ms));
    gort::GC();
    ++collections;
  }
  stop = true;
  workers.Wait();
  graphs.close();
  consumer.Wait();
  std::printf("graph-mutator: %d forced collections, %ld steps, %d corrupt\n", collections, steps_total.load(),
              corrupt.load());
  return corrupt.load() == 0 ? 0 : 1;
}
