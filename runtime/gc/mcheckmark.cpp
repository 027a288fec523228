#include "runtime/gc/mcheckmark.hpp"

#include <gort/heap.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "runtime/alloc/mcentral.hpp"
#include "runtime/alloc/mheap.hpp"
#include "runtime/core/mem.hpp"
#include "runtime/core/sanitizer.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/mgcmark.hpp"
#include "runtime/gc/mgcwork.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

bool g_observe_scans = false;

namespace {

// ---- what the concurrent mark read ----------------------------------------------------------
//
// An open-addressing table (linear probing) of scanned word addresses and the words read there.
// A key packs the address (48 bits) with the cycle's number (16 bits): an entry of an earlier
// cycle counts as empty, so a new cycle starts without clearing the table. Markers insert
// concurrently (a claim is a compare-and-swap on the key; the value is read only with the world
// stopped). Two markers may scan the same word at once (TSan saw two scan a channel's buffer
// together): both store what they read, relaxed, and either is kept.
// When the cycle's entries fill it to 3/4, later scans are not remembered and a lookup that
// fails says so.
struct ScannedWord {
  std::atomic<uint64_t> key;
  std::atomic<uint64_t> value;
  std::atomic<bool> dead;  // ASan builds: the word was poisoned then (core/sanitizer.hpp, dead_to_asan)
};
constexpr size_t kTableSlots = size_t{1} << 21;  // 48 MiB (24-byte entries), mapped when checkmark is first used
ScannedWord* g_table = nullptr;
uint64_t g_table_gen = 0;  // 1..0xffff
std::atomic<size_t> g_table_used{0};
bool g_remember = false;
uintptr_t g_probe_lo = 0, g_probe_hi = 0;  // a report: print the scanned words in this range

size_t slot_of(uintptr_t addr) { return static_cast<size_t>((addr >> 3) * 0x9E3779B97F4A7C15ull >> 43) & (kTableSlots - 1); }

void note(ScannedWord& w, uintptr_t value, bool dead) {
  w.value.store(value, std::memory_order_relaxed);
  w.dead.store(dead, std::memory_order_relaxed);
}

void remember(uintptr_t addr, uintptr_t value, bool dead) {
  if (g_table_used.load(std::memory_order_relaxed) >= kTableSlots / 4 * 3) return;
  uint64_t mine = addr | (g_table_gen << kAddrBits);
  for (size_t i = slot_of(addr);; i = (i + 1) & (kTableSlots - 1)) {
    uint64_t k = g_table[i].key.load(std::memory_order_relaxed);
    if (k == mine) {
      note(g_table[i], value, dead);
      return;
    }
    if ((k >> kAddrBits) == g_table_gen) continue;  // another address of this cycle
    if (g_table[i].key.compare_exchange_strong(k, mine, std::memory_order_relaxed)) {
      note(g_table[i], value, dead);
      g_table_used.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    i = (i - 1) & (kTableSlots - 1);  // lost the race for this slot: look at it again
  }
}

// 1: found, 0: not scanned, -1: unknown (the table filled up).
int lookup(uintptr_t addr, uintptr_t* value, bool* dead = nullptr) {
  uint64_t mine = addr | (g_table_gen << kAddrBits);
  for (size_t i = slot_of(addr);; i = (i + 1) & (kTableSlots - 1)) {
    uint64_t k = g_table[i].key.load(std::memory_order_relaxed);
    if (k == mine) {
      *value = g_table[i].value.load(std::memory_order_relaxed);
      if (dead) *dead = g_table[i].dead.load(std::memory_order_relaxed);
      return 1;
    }
    if ((k >> kAddrBits) != g_table_gen) break;
  }
  return g_table_used.load(std::memory_order_relaxed) >= kTableSlots / 4 * 3 ? -1 : 0;
}

// The words around a referencing word, within the range scanned with it, each with what the
// concurrent mark read there: on a stack, the return addresses among them name the frames
// (symbolized afterwards with the executable mappings print_code_mappings lists).
GORT_NO_SANITIZE_SCAN void print_neighbourhood(uintptr_t at, uintptr_t lo, uintptr_t hi) {
  constexpr uintptr_t kBelow = 0x80, kAbove = 0x200;
  uintptr_t from = at - lo > kBelow ? at - kBelow : lo, to = hi - at > kAbove ? at + kAbove : hi;
  std::fprintf(stderr, "    in the range [%#lx, %#lx) scanned with it; around it:\n", static_cast<unsigned long>(lo),
               static_cast<unsigned long>(hi));
  for (uintptr_t a = from & ~uintptr_t{7}; a + sizeof(uintptr_t) <= to; a += sizeof(uintptr_t)) {
    uintptr_t w = *reinterpret_cast<const uintptr_t*>(a), before = 0;
    int seen = lookup(a, &before);
    std::fprintf(stderr, "    %c %#lx: %#018lx", a == at ? '>' : ' ', static_cast<unsigned long>(a),
                 static_cast<unsigned long>(w));
    if (seen == 1) std::fprintf(stderr, "  (concurrent mark read %#lx)\n", static_cast<unsigned long>(before));
    else std::fprintf(stderr, seen == 0 ? "  (not scanned)\n" : "\n");
  }
}

// The executable mappings of the process (/proc/self/maps, read with system calls only: the
// world is stopped and a stopped thread may hold a lock of libc's), to symbolize the words above.
void print_code_mappings() {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::fprintf(stderr, "  executable mappings:\n");
  static char buf[8192];
  size_t kept = 0;  // the start of a line the last read cut off
  for (ssize_t k; (k = ::read(fd, buf + kept, sizeof buf - 1 - kept)) > 0;) {
    size_t n = kept + static_cast<size_t>(k);
    buf[n] = 0;
    char* line = buf;
    for (char* end; (end = std::strchr(line, '\n'));) {
      *end = 0;
      if (std::strstr(line, " r-xp ")) std::fprintf(stderr, "    %s\n", line);
      line = end + 1;
    }
    kept = n - static_cast<size_t>(line - buf);
    if (kept == sizeof buf - 1) kept = 0;  // a line longer than the buffer: dropped
    std::memmove(buf, line, kept);
  }
  ::close(fd);
}

// probe and checkmark_observe_scan read what scan_conservative reads (sanitizer.hpp).
GORT_NO_SANITIZE_SCAN void probe(uintptr_t lo, uintptr_t hi) {
  for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
    uintptr_t w = *reinterpret_cast<const uintptr_t*>(a), before;
    bool dead_then = false;
    if (w < g_probe_lo || w >= g_probe_hi) continue;
    std::fprintf(stderr, "  referenced by the word %#lx at %#lx (a stack, registers or a conservatively traced object%s)",
                 static_cast<unsigned long>(w), static_cast<unsigned long>(a), dead_to_asan(a) ? ", poisoned by ASan" : "");
    switch (lookup(a, &before, &dead_then)) {
      case 1:
        std::fprintf(stderr, "; the concurrent mark read %#lx there%s\n", static_cast<unsigned long>(before),
                     dead_then ? ", poisoned by ASan then" : "");
        break;
      case 0: std::fprintf(stderr, "; the concurrent mark did not scan that word\n"); break;
      default: std::fprintf(stderr, "; whether the concurrent mark scanned it is not known (too many words)\n");
    }
    print_neighbourhood(a, lo, hi);
  }
}

}  // namespace

// ---- verification -----------------------------------------------------------------------------

namespace {
// An array grown with sys_alloc, never malloc: checkmark runs with the world stopped, and a
// stopped thread may hold a malloc lock.
template <class T>
struct SysArray {
  T* p = nullptr;
  size_t n = 0, cap = 0;
  T* grow_by(size_t k) {
    if (n + k > cap) {
      size_t c = cap ? cap : 4096;
      while (c < n + k) c *= 2;
      auto* q = static_cast<T*>(sys_alloc(c * sizeof(T), stats().other_sys));
      if (p) {
        mem_copy(q, p, n * sizeof(T));
        sys_free(p, cap * sizeof(T), stats().other_sys);
      }
      p = q;
      cap = c;
    }
    T* at = p + n;
    n += k;
    return at;
  }
};

// The concurrent mark's verdict, kept while checkmark marks again: each span and where its mark
// bytes were copied.
struct SavedMarks {
  Span* s;
  size_t at;
};
SysArray<SavedMarks> g_saved;
SysArray<uint8_t> g_saved_bytes;

const uint8_t* saved_marks(const SavedMarks& x) { return g_saved_bytes.p + x.at; }

bool concurrently_marked(Span* s, uint32_t i) {
  for (size_t k = 0; k < g_saved.n; ++k)
    if (g_saved.p[k].s == s) return saved_marks(g_saved.p[k])[i];
  return false;
}

template <class F>
void for_each_span(F&& f) {
  for (int spc = 0; spc < kNumSpanClasses; ++spc) central(spc).for_each_span(f);
  large_spans().for_each_span(f);
}

const char* type_name_at(Span* s, uint32_t i) {
  uint16_t t = s->type_of(i);
  return t && t != kDestroying ? type_info(t).name : "pointer-free";
}

// The objects whose trace() references the object at slot i of s, among those checkmark marked:
// each is printed; returns one the concurrent mark left white (the way up to the root), if any.
bool print_referencers(Span* s, uint32_t i, Span** up_span, uint32_t* up_index) {
  bool found_white = false;
  for_each_span([&](Span* p) {
    if (p->noscan) return;
    for (uint32_t k = 0; k < p->nelems; ++k) {
      if (!p->is_allocated(k) || !p->is_marked(k)) continue;
      uint16_t pt = p->type_of(k);
      if (pt == 0 || pt == kDestroying || !type_info(pt).trace) continue;
      std::atomic_ref<uint8_t>(s->markbytes[i]).store(0, std::memory_order_relaxed);
      {
        MarkWorker probe;  // marks the children (not scanned further): did one of them become it?
        trace_object(probe, pt, p->object_addr(k));
        probe.discard();
      }
      if (!s->is_marked(i)) continue;
      bool white = !concurrently_marked(p, k);
      std::fprintf(stderr, "  referenced by object %#lx (type %s, %s by the concurrent mark)\n",
                   static_cast<unsigned long>(p->object_addr(k)), type_info(pt).name, white ? "white" : "marked");
      if (white && !found_white) {
        found_white = true;
        *up_span = p;
        *up_index = k;
      }
    }
  });
  std::atomic_ref<uint8_t>(s->markbytes[i]).store(1, std::memory_order_relaxed);
  return found_white;
}

// Reports the object at slot i of s (checkmark marked it, the concurrent mark did not), who
// references it, and, up a chain of white referencers, what root reaches them; then aborts.
[[noreturn]] void report_unmarked(Span* s, uint32_t i) {
  std::fprintf(stderr,
               "gort: fatal error: checkmark found an object the concurrent mark did not: object %#lx "
               "(%u bytes, type %s) is reachable but was left white\n",
               static_cast<unsigned long>(s->object_addr(i)), s->elemsize, type_name_at(s, i));
  for (int depth = 0; depth < 64; ++depth) {
    Span* up_s = nullptr;
    uint32_t up_i = 0;
    if (!print_referencers(s, i, &up_s, &up_i)) break;
    s = up_s;
    i = up_i;
    std::fprintf(stderr, " which is white too: object %#lx (type %s)\n", static_cast<unsigned long>(s->object_addr(i)),
                 type_name_at(s, i));
  }
  uintptr_t obj = s->object_addr(i);
  g_probe_lo = obj;
  g_probe_hi = obj + s->elemsize;
  g_observe_scans = true;
  for_each_thread([&](ThreadRecord* r) {
    std::fprintf(stderr,
                 "  thread %p: stack [%#lx, %#lx) stopped at %#lx (%s%s, park frame %#lx, in a program's handler that "
                 "interrupted %#lx), goroutine stack [%#lx, %#lx), sys sp %#lx\n",
                 static_cast<void*>(r), static_cast<unsigned long>(r->stack_lo), static_cast<unsigned long>(r->stack_hi),
                 static_cast<unsigned long>(r->stopped_sp),
                 r->blocked.load(std::memory_order_relaxed) ? "blocked_wait"
                 : r->stopped_async                         ? "signal"
                                                            : "suspend_self",
                 r->stopped_on_alt_stack ? " on the alternate stack" : "", static_cast<unsigned long>(r->park_sp),
                 static_cast<unsigned long>(r->interrupted_sp), static_cast<unsigned long>(r->g_stack_lo),
                 static_cast<unsigned long>(r->g_stack_hi), static_cast<unsigned long>(r->g_sys_sp));
  });
  {
    MarkWorker probe;
    scan_all_roots(probe, false);
    probe.discard();
  }
  std::fprintf(stderr, "  (Root<T> slots and specials are not listed)\n");
  print_code_mappings();
  std::abort();
}
}  // namespace

void checkmark_verify() {
  // Keep the concurrent mark's bytes aside, mark again from scratch, compare.
  g_saved.n = g_saved_bytes.n = 0;
  for_each_span([&](Span* s) {
    uint8_t* copy = g_saved_bytes.grow_by(s->nelems);
    mem_copy(copy, s->markbytes, s->nelems);
    *g_saved.grow_by(1) = {s, static_cast<size_t>(copy - g_saved_bytes.p)};
    s->clear_marks();
  });
  {
    MarkWorker w;
    skip_forgeable_words(true);
    g_remember = false;  // keep what the concurrent mark read, for report_unmarked
    g_observe_scans = false;
    set_checkmark_scanning(true);
    scan_all_roots(w, /*m_stacks=*/false);
    set_checkmark_scanning(false);
    w.publish();
    drain_begin(1);
    w.drain();
    skip_forgeable_words(false);
  }
  for (size_t k = 0; k < g_saved.n; ++k) {
    const SavedMarks& x = g_saved.p[k];
    const uint8_t* marks = saved_marks(x);
    for (uint32_t i = 0; i < x.s->nelems; ++i)
      if (x.s->is_marked(i) && !marks[i] && x.s->is_allocated(i)) report_unmarked(x.s, i);
    mem_copy(x.s->markbytes, marks, x.s->nelems);
  }
}

bool checkmark_revealed(uintptr_t addr, uintptr_t word) {
  uintptr_t before;
  bool dead_then = false;
  if (lookup(addr, &before, &dead_then) != 1) return false;
  if (dead_then && before == word) return true;
  return (before >> kAddrBits) != 0 && (before & ((uintptr_t{1} << kAddrBits) - 1)) == word;
}

void checkmark_begin_cycle() {
  if (!g_table) g_table = static_cast<ScannedWord*>(sys_alloc(kTableSlots * sizeof(ScannedWord), stats().other_sys));
  g_table_gen = g_table_gen % 0xffff + 1;
  g_table_used.store(0, std::memory_order_relaxed);
  g_remember = true;
  g_observe_scans = true;
}

GORT_NO_SANITIZE_SCAN void checkmark_observe_scan(uintptr_t lo, uintptr_t hi) {
  if (g_probe_hi) probe(lo, hi);
  if (g_remember)
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t))
      remember(a, *reinterpret_cast<const uintptr_t*>(a), dead_to_asan(a));
}

}  // namespace gort::internal
