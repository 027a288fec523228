// gccheckmark's own test: a program that breaks the write barrier on purpose, the way a traced
// field the barrier cannot see would (a raw pointer written with memcpy), while a concurrent mark
// runs. Object B hangs at the end of a long list; once marking has started and A (a root) is
// scanned, the program moves B into A and unlinks it from the list's last node, both without the
// barrier. The concurrent mark, still walking the list, never reaches B: B stays white although
// A references it. With GODEBUG=gccheckmark=1 the runtime must abort naming B, its type and A.
// Exit status: 3 if no attempt managed to hide B (the mark reached it first every time), 4 if
// marking never started concurrently (GODEBUG=gcstoptheworld=1), 0 never (B is then freed while
// A references it, and the program exits before touching it).
#include <gort/gort.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include "runtime/core/sanitizer.hpp"  // GORT_TSAN
#include "runtime/core/thread.hpp"   // scrub_stack()
#include "runtime/gc/barrier.hpp"  // gc_marking(): the test needs to know when marking runs
#include "runtime/gc/mgcmark.hpp"  // current_stack_black(): and when its own stack was scanned

#if GORT_TSAN
// ThreadSanitizer's dynamic annotations (its runtime defines them).
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace {

struct FaultNode {
  gort::Ref<FaultNode> next;
  uint64_t tag = 0;
  void trace(gort::Tracer& t) const { t.visit(next); }
};

constexpr int kListLength = 300000;  // marking it takes milliseconds: time to hide B

// Builds head -> ... -> last -> B; returns last's address, hidden from the conservative scan.
__attribute__((noinline)) uintptr_t build_list(gort::Root<FaultNode>& head) {
  head = gort::make<FaultNode>();
  FaultNode* cur = head.get();
  for (int i = 0; i < kListLength; ++i) {
    cur->next = gort::make<FaultNode>();
    cur = cur->next.get();
  }
  cur->next = gort::make<FaultNode>();
  cur->next->tag = 0xB;
  return ~reinterpret_cast<uintptr_t>(cur);
}

// Moves B from the list's last node into a, without the barrier; B's address stays only in a
// (and perhaps in this frame's dead slots).
__attribute__((noinline)) void hide(FaultNode* a, uintptr_t hidden_last) {
  auto* last = reinterpret_cast<FaultNode*>(~hidden_last);
  FaultNode* b = last->next.get();
#if GORT_TSAN
  // The fault is a race by design (plain stores into fields mark workers read): ThreadSanitizer
  // is told to look away from these two stores only.
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
  std::memcpy(static_cast<void*>(&a->next), &b, sizeof b);
  FaultNode* none = nullptr;
  std::memcpy(static_cast<void*>(&last->next), &none, sizeof none);
#if GORT_TSAN
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
  // Nor in b's own slot, which a sanitizer build keeps apart from every other: the frames that
  // run later (pthread_join's) may leave it as it is, inside their live range.
  b = nullptr;
  asm volatile("" : : "r"(&b) : "memory");
}

}  // namespace

int main() {
  gort::Runtime rt;  // reads GODEBUG
  gort::Root<FaultNode> head, a;
  bool marked_concurrently = false;
  for (int attempt = 0; attempt < 20; ++attempt) {
    uintptr_t last = build_list(head);
    // A cycle that building the list started may still be marking: the mark below must be the
    // collector thread's (a hide during another cycle's mark, which may have reached B already,
    // proves nothing). Finishing one here also puts the next trigger far away.
    gort::GC();
    // build_list's dead frames hold B's address: the frames that run next (the thread's start)
    // may keep some of those slots unwritten inside their live range, and the concurrent mark
    // would find B there.
    gort::internal::scrub_stack(64 << 10);
    a = gort::make<FaultNode>();
    std::atomic<bool> done{false};
    std::thread collector([&] {
      gort::AttachThread attach;
      gort::GC();
      done = true;
    });
    while (!gort::internal::gc_marking() && !done.load()) std::this_thread::yield();
    if (gort::internal::gc_marking()) {
      marked_concurrently = true;
      // Let the workers scan this thread's stack and the roots (A among them), then hide B.
      // (ThreadSanitizer builds mark several times slower: they wait longer.)
      for (int i = 0; i < 10000 && gort::internal::gc_marking() && !gort::internal::current_stack_black(); ++i)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      std::this_thread::sleep_for(std::chrono::microseconds(gort::internal::kThreadSanitizer ? 5000 : 500));
      if (gort::internal::gc_marking()) hide(a.get(), last);
    }
    collector.join();
    head = nullptr;
    a = nullptr;
  }
  std::fprintf(stderr, "checkmark-fault: %s\n", marked_concurrently ? "B was never hidden" : "no concurrent mark");
  return marked_concurrently ? 3 : 4;
}
