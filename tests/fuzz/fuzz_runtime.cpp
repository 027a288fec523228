// libFuzzer target (clang, `./run sanitize`): each input is a program of runtime operations.
//
// The input is read as a sequence of operations with their operand bytes: allocate a node (and a
// pointer-free payload) into one of 16 rooted slots, link, unlink, follow and drop nodes, keep
// them in a managed array of Refs, set finalizers and cleanups, make and read weak pointers, send
// and receive them over a buffered channel and, from a goroutine, over an unbuffered one, and
// collect. After every collection everything the slots reach is checked (each node's check word
// and payload, derived from its id: a node freed while reachable and reused fails it), weak
// pointers either name their own node or are null, the finalizers and cleanups that ran saw
// intact objects, and MemStats' identities hold. Any violation aborts (a finding).
//
// Build: the ASan+UBSan configuration of `./run sanitize` (tests/meson.build). Run:
//   build-asan/tests/fuzz-runtime -max_total_time=60 NEW_DIR tests/fuzz/corpus
#include <gort/gort.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>
#include <vector>

#include "memstats_identities.hpp"

namespace {

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

struct Node {
  gort::Ref<Node> next, other;
  gort::Ref<gort::Array<uint64_t>> payload;
  uint64_t id = 0, check = 0;
  bool finalizable = false;  // SetFinalizer was called (once per object, as Go requires); a leaf
  void trace(gort::Tracer& t) const {
    t.visit(next);
    t.visit(other);
    t.visit(payload);
  }
};

[[noreturn]] void finding(const char* what, uint64_t id) {
  std::fprintf(stderr, "fuzz-runtime: %s (node id %llu)\n", what, static_cast<unsigned long long>(id));
  std::abort();
}

void check_node(const Node* n) {
  if (n->check != mix(n->id)) finding("a reachable node was overwritten", n->id);
  if (const gort::Array<uint64_t>* p = n->payload.get())
    for (size_t i = 0; i < p->size(); ++i)
      if ((*p)[i] != mix(n->id + i)) finding("a reachable payload was overwritten", n->id);
}

std::atomic<uint64_t> g_finalized{0}, g_cleaned{0};

constexpr int kSlots = 16;
constexpr size_t kArray = 8;
constexpr size_t kChanCap = 8;

// One input's world. Its slots are Roots; the channel lives on this (scanned) stack.
struct World {
  gort::Root<Node> slot[kSlots];
  gort::Weak<Node> weak[kSlots];
  uint64_t weak_id[kSlots] = {};
  gort::Root<gort::Array<gort::Ref<Node>>> array;
  uint64_t next_id = 1;

  Node* make_node(size_t payload) {
    Node* n = gort::make<Node>();
    n->id = next_id++;
    n->check = mix(n->id);
    if (payload) {
      auto* p = gort::make_array<uint64_t>(payload);
      for (size_t i = 0; i < payload; ++i) (*p)[i] = mix(n->id + i);
      n->payload = p;
    }
    return n;
  }

  void verify() {
    std::unordered_set<const Node*> seen;
    std::vector<const Node*> todo;
    for (auto& s : slot)
      if (s.get()) todo.push_back(s.get());
    if (gort::Array<gort::Ref<Node>>* arr = array.get())
      for (size_t i = 0; i < arr->size(); ++i)
        if ((*arr)[i].get()) todo.push_back((*arr)[i].get());
    while (!todo.empty()) {
      const Node* n = todo.back();
      todo.pop_back();
      if (!seen.insert(n).second) continue;
      check_node(n);
      if (n->next.get()) todo.push_back(n->next.get());
      if (n->other.get()) todo.push_back(n->other.get());
    }
    for (int i = 0; i < kSlots; ++i)
      if (Node* n = weak[i].get())
        if (n->id != weak_id[i]) finding("a weak pointer names another object", weak_id[i]);
    gort::MemStats m{};
    gort::ReadMemStats(&m);
    if (const char* broken = gort_test::broken_identity(m)) finding(broken, 0);
  }
};

// A goroutine builds a short list and hands it over an unbuffered channel (a direct hand-off:
// the value lives only in the channel's transfer meanwhile).
Node* list_from_goroutine(World& w, int length) {
  gort::Chan<Node*> handoff;
  uint64_t first_id = w.next_id;
  w.next_id += static_cast<uint64_t>(length);
  gort::go([handoff, first_id, length]() mutable {
    Node* head = nullptr;
    for (int i = length - 1; i >= 0; --i) {
      Node* n = gort::make<Node>();
      n->id = first_id + static_cast<uint64_t>(i);
      n->check = mix(n->id);
      n->next = head;
      head = n;
    }
    handoff.send(head);
  });
  return *handoff.recv();
}

void run(const uint8_t* data, size_t size) {
  World w;
  gort::Chan<Node*> ch(kChanCap);
  size_t pos = 0;
  auto byte = [&]() -> uint8_t { return pos < size ? data[pos++] : 0; };
  while (pos < size) {
    uint8_t op = byte() % 15;
    int a = byte() % kSlots, b = byte() % kSlots;
    switch (op) {
      case 0: w.slot[a] = w.make_node(byte() % 4 == 0 ? byte() % 64 : 0); break;
      // A node with a finalizer stays a leaf: a cycle through it is never collected (Go's rule),
      // and the process would grow with every such input.
      case 1: if (w.slot[a].get() && !w.slot[a]->finalizable) w.slot[a]->next = w.slot[b].get(); break;
      case 2: if (w.slot[a].get() && !w.slot[a]->finalizable) w.slot[a]->other = w.slot[b].get(); break;
      case 3: w.slot[a] = nullptr; break;
      case 4: if (w.slot[a].get()) w.slot[a] = w.slot[a]->next.get(); break;
      case 5: {
        if (!w.array.get()) w.array = gort::make_array<gort::Ref<Node>>(kArray);
        (*w.array)[static_cast<size_t>(b) % kArray] = w.slot[a].get();
        break;
      }
      case 6: if (w.array.get()) w.slot[a] = (*w.array)[static_cast<size_t>(b) % kArray].get(); break;
      case 7: if (byte() % 2) w.array = nullptr; break;
      case 8: {
        Node* n = w.slot[a].get();
        if (!n || n->finalizable || n->next.get() || n->other.get()) break;
        n->finalizable = true;
        gort::SetFinalizer(n, [](Node* x) {
          check_node(x);
          g_finalized.fetch_add(1, std::memory_order_relaxed);
        });
        break;
      }
      case 9: {
        Node* n = w.slot[a].get();
        if (!n) break;
        gort::AddCleanup(n, [](uint64_t id) {
          if (id == 0) finding("a cleanup got a corrupt argument", id);
          g_cleaned.fetch_add(1, std::memory_order_relaxed);
        }, n->id);
        break;
      }
      case 10: {
        Node* n = w.slot[b].get();
        w.weak[a] = gort::Weak<Node>(n);
        w.weak_id[a] = n ? n->id : 0;
        break;
      }
      case 11: {
        Node* n = w.weak[a].get();
        if (!n) break;
        if (n->id != w.weak_id[a]) finding("a weak pointer names another object", w.weak_id[a]);
        check_node(n);
        w.slot[b] = n;
        break;
      }
      case 12: {
        if (ch.len() < ch.cap()) ch.send(w.slot[a].get());
        else if (auto v = ch.recv()) w.slot[b] = *v;
        break;
      }
      case 13: w.slot[a] = list_from_goroutine(w, 1 + b); break;
      case 14: {
        gort::GC();
        w.verify();
        break;
      }
    }
  }
  // The channel's values, checked on the way out.
  while (ch.len() > 0)
    if (auto v = ch.recv(); v && *v) check_node(*v);
  gort::GC();
  w.verify();
}

gort::Runtime* g_runtime = nullptr;  // for the whole process: libFuzzer ends it with exit()

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_runtime = new gort::Runtime;  // attaches this thread, which runs every input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(data, size);
  return 0;
}
