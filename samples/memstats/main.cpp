// memstats: gort's flagship sample.
//
// Runs a small mixed workload on the garbage-collected heap, then prints gort::ReadMemStats the
// way a Go program prints runtime.ReadMemStats with fmt.Printf("memstat: %+v\n", m), except that
// every field goes on its own line followed by a one-line explanation of what it means. The
// field meanings are Go's (runtime.MemStats, Go 1.19); docs/memstats.md explains each one in
// detail, and docs/gctrace.md explains the line GODEBUG=gctrace=1 prints for every collection:
//
//   GODEBUG=gctrace=1 build/samples/memstats
//
// The workload:
//  - a long-lived binary tree (2^17 - 1 nodes of two Refs and an int) kept alive by a gort::Root;
//  - short-lived garbage of several sizes: temporary trees, tiny pointer-free objects (which Go's
//    tiny allocator packs 16 bytes at a time), 48-byte and 1 KiB records, arrays of doubles, arrays
//    in size classes above 18432 bytes (counted in Mallocs but not in BySize), and arrays over
//    32 KiB (large objects, also counted in Mallocs but not in BySize);
//  - mid-lived records held for a while in a managed ring (an Array<Ref<Record>> under a Root);
//  - two forced collections (gort::GC), which count in NumForcedGC.
// After the dump it checks the identities that hold within one snapshot and exits with status 1
// if any of them fails.
#include <gort/gort.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// ---------------------------------------------------------------------------------------------
// The workload's types.

// A tree node: two traced pointers and an int, 24 bytes (Go's size class 24).
struct Node {
  gort::Ref<Node> left, right;
  int value = 0;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};

// Pointer-free objects smaller than 16 bytes: Go's tiny allocator packs them into 16-byte blocks.
struct Point {
  int32_t x, y;
  Point(int32_t x_, int32_t y_) : x(x_), y(y_) {}
};
struct Tag {
  char text[12];
};

// 48 bytes with one traced pointer (size class 48).
struct Record {
  gort::Ref<Record> next;
  int64_t payload[5] = {};
  void trace(gort::Tracer& t) const { t.visit(next); }
};

// 1008 bytes with one traced pointer (size class 1024).
struct Page {
  gort::Ref<Page> next;
  char body[1000] = {};
  void trace(gort::Tracer& t) const { t.visit(next); }
};

using Ring = gort::Array<gort::Ref<Record>>;

constexpr int kLongLivedDepth = 16;  // 2^17 - 1 nodes, about 3 MiB
constexpr int kTempDepth = 9;        // 1023 nodes per temporary tree
constexpr int kRounds = 160;
constexpr size_t kRingSize = 512;

// Top-down, as in Go's GCBench: the parent is reachable from this frame (a conservatively
// scanned root) while its children are being built.
Node* make_tree(int depth) {
  Node* n = gort::make<Node>();
  n->value = depth;
  if (depth > 0) {
    n->left = make_tree(depth - 1);
    n->right = make_tree(depth - 1);
  }
  return n;
}

long count_nodes(const Node* n) {
  if (n == nullptr) return 0;
  return 1 + count_nodes(n->left.get()) + count_nodes(n->right.get());
}

// One round of garbage; returns a checksum so that nothing can be optimized away.
long one_round(int round, Ring* ring, size_t& ring_pos) {
  long sum = count_nodes(make_tree(kTempDepth));  // 1023 short-lived nodes

  for (int i = 0; i < 400; i++) {  // tiny, pointer-free
    Point* p = gort::make<Point>(i, round);
    Tag* t = gort::make<Tag>();
    t->text[0] = char('a' + i % 26);
    sum += p->x + p->y + t->text[0];
  }

  Record* chain = nullptr;  // 120 records in a chain; every 8th one also goes into the ring
  for (int i = 0; i < 120; i++) {
    Record* r = gort::make<Record>();
    r->payload[0] = i;
    r->next = chain;
    chain = r;
    if (i % 8 == 0) {
      (*ring)[ring_pos] = r;  // mid-lived: overwritten kRingSize / 15 rounds later
      ring_pos = (ring_pos + 1) % kRingSize;
    }
  }
  for (Record* r = chain; r != nullptr; r = r->next.get()) sum += r->payload[0];

  for (int i = 0; i < 6; i++) {  // 1 KiB class
    Page* pg = gort::make<Page>();
    pg->body[i] = char(i);
    sum += pg->body[i];
  }

  for (int i = 0; i < 16; i++) {  // small arrays of doubles, several classes
    gort::Array<double>* a = gort::make_array<double>(size_t(10 + 40 * i));
    (*a)[0] = double(i);
    sum += long(a->size()) + long((*a)[0]);
  }

  if (round % 4 == 0) {  // 24000 bytes: a small-object class above BySize's last one (18432)
    gort::Array<char>* mid = gort::make_array<char>(24000);
    (*mid)[mid->size() - 1] = 'z';
    sum += (*mid)[mid->size() - 1];
  }

  if (round % 8 == 0) {  // large objects: over 32 KiB, allocated as whole pages
    gort::Array<double>* big = gort::make_array<double>(8192);  // 64 KiB
    big->data()[4096] = 1.5;
    sum += long(big->size());
  }
  if (round % 40 == 0) {
    gort::Array<int64_t>* huge = gort::make_array<int64_t>(size_t{1} << 17);  // 1 MiB
    (*huge)[12345] = round;
    sum += (*huge)[12345];
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Printing, in the layout of Go's fmt.Printf("memstat: %+v\n", m), one field a line.

void field(const char* name, unsigned long long value, const char* what) {
  std::printf("%s:%llu  // %s\n", name, value, what);
}

void flag(const char* name, bool value, const char* what) {
  std::printf("%s:%s  // %s\n", name, value ? "true" : "false", what);
}

// A [256]uint64 ring, in full, as %v prints an array: space-separated inside brackets.
template <class Array>
void ring_field(const char* name, const Array& values, const char* what) {
  std::printf("%s:[", name);
  bool first = true;
  for (const auto& v : values) {
    std::printf(first ? "%llu" : " %llu", static_cast<unsigned long long>(v));
    first = false;
  }
  std::printf("]  // %s\n", what);
}

// A float64 as Go's %v prints it (strconv's shortest %g): the shortest digits that read back as
// the same value, in %e form when the decimal exponent is below -4 or at least 6.
std::string go_float(double v) {
  if (v == 0) return "0";
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string s(buf, sci.ptr);
  int exp = std::atoi(s.c_str() + s.find('e') + 1);
  if (exp < -4 || exp >= 6) return s;  // e.g. 1.325626798158314e-06, as Go prints it
  auto fix = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, fix.ptr);
}

void print_memstats(const gort::MemStats& m) {
  std::printf("memstat: {\n");
  field("Alloc", m.Alloc, "bytes of allocated heap objects (same as HeapAlloc)");
  field("TotalAlloc", m.TotalAlloc, "cumulative bytes allocated for heap objects; never decreases");
  field("Sys", m.Sys, "total bytes obtained from the OS (virtual address space): the sum of the *Sys fields");
  field("Lookups", m.Lookups, "pointer lookups by the runtime; always 0 (Go 1.19 no longer counts any)");
  field("Mallocs", m.Mallocs, "cumulative count of heap objects allocated (a count, tiny allocations included)");
  field("Frees", m.Frees, "cumulative count of heap objects freed (a count, not bytes)");
  field("HeapAlloc", m.HeapAlloc, "bytes of allocated heap objects: reachable ones plus unreachable ones not yet swept");
  field("HeapSys", m.HeapSys, "bytes of heap memory obtained from the OS (heap, not stacks) = HeapIdle + HeapInuse");
  field("HeapIdle", m.HeapIdle, "bytes in idle spans: no objects, reusable, or returnable to the OS");
  field("HeapInuse", m.HeapInuse, "bytes in in-use spans (spans holding at least one object)");
  field("HeapReleased", m.HeapReleased, "bytes of idle heap whose physical memory was returned to the OS (part of HeapIdle)");
  field("HeapObjects", m.HeapObjects, "number of allocated heap objects = Mallocs - Frees");
  field("StackInuse", m.StackInuse, "bytes in goroutine stack spans (0 until gort has goroutines)");
  field("StackSys", m.StackSys, "bytes of stack memory from the OS: StackInuse plus stacks of gort's own threads");
  field("MSpanInuse", m.MSpanInuse, "bytes of allocated span structures (the runtime's span metadata)");
  field("MSpanSys", m.MSpanSys, "bytes obtained from the OS for span structures");
  field("MCacheInuse", m.MCacheInuse, "bytes of allocated per-thread allocation caches (mcache)");
  field("MCacheSys", m.MCacheSys, "bytes obtained from the OS for per-thread allocation caches");
  field("BuckHashSys", m.BuckHashSys, "bytes of memory in profiling bucket hash tables (off-heap)");
  field("GCSys", m.GCSys, "bytes of memory in garbage collection metadata (mark bits, page maps, work lists)");
  field("OtherSys", m.OtherSys, "bytes of memory in miscellaneous off-heap runtime allocations");
  field("NextGC", m.NextGC, "heap goal: the HeapAlloc at which the next cycle aims to have finished");
  field("LastGC", m.LastGC, "when the last collection finished, ns since 1970 (= the latest PauseEnd)");
  field("PauseTotalNs", m.PauseTotalNs, "cumulative nanoseconds of stop-the-world pauses (a duration, not a count)");
  ring_field("PauseNs", m.PauseNs, "recent pause times in ns, a ring: the latest is PauseNs[(NumGC+255)%256]");
  ring_field("PauseEnd", m.PauseEnd, "when recent pauses ended (not began), ns since 1970, same ring as PauseNs");
  field("NumGC", m.NumGC, "number of completed GC cycles (a count, not a size)");
  field("NumForcedGC", m.NumForcedGC, "number of cycles forced by calling gort::GC()");
  std::printf("GCCPUFraction:%s  // fraction (0 to 1) of available CPU used by the GC since start; never negative\n",
              go_float(m.GCCPUFraction).c_str());
  flag("EnableGC", m.EnableGC, "GC is enabled; always true, even with GOGC=off");
  flag("DebugGC", m.DebugGC, "currently unused; always false");
  std::printf("BySize:[");
  bool first = true;
  for (const auto& c : m.BySize) {
    std::printf("%s{Size:%u Mallocs:%llu Frees:%llu}", first ? "" : " ", unsigned(c.Size),
                static_cast<unsigned long long>(c.Mallocs), static_cast<unsigned long long>(c.Frees));
    first = false;
  }
  std::printf("]  // per size class up to 18432 bytes: objects allocated and freed; larger ones are not listed\n");
  std::printf("}\n");
}

// ---------------------------------------------------------------------------------------------
// The identities that hold within one snapshot (docs/memstats.md, "Identities").

// Go's first 61 size classes, the sizes BySize reports.
constexpr uint32_t kBySizeSizes[61] = {
    0,    8,    16,   24,   32,   48,   64,   80,    96,    112,   128,   144,   160,   176,   192,  208,
    224,  240,  256,  288,  320,  352,  384,  416,   448,   480,   512,   576,   640,   704,   768,  896,
    1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304,  2688,  3072,  3200,  3456,  4096,  4864,  5376, 6144,
    6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432};

int failures = 0;

void check(bool ok, const char* identity) {
  std::printf("check: %-72s %s\n", identity, ok ? "ok" : "FAILED");
  if (!ok) failures++;
}

void check_identities(const gort::MemStats& m) {
  check(m.Sys == m.HeapSys + m.StackSys + m.MSpanSys + m.MCacheSys + m.BuckHashSys + m.GCSys + m.OtherSys,
        "Sys == HeapSys+StackSys+MSpanSys+MCacheSys+BuckHashSys+GCSys+OtherSys");
  check(m.HeapIdle + m.HeapInuse == m.HeapSys, "HeapIdle + HeapInuse == HeapSys");
  check(m.HeapReleased <= m.HeapIdle, "HeapReleased <= HeapIdle");
  check(m.Alloc == m.HeapAlloc, "Alloc == HeapAlloc");
  check(m.HeapAlloc <= m.HeapInuse, "HeapAlloc <= HeapInuse");
  check(m.HeapAlloc <= m.TotalAlloc, "HeapAlloc <= TotalAlloc");
  check(m.HeapObjects == m.Mallocs - m.Frees, "HeapObjects == Mallocs - Frees");
  check(m.StackInuse <= m.StackSys && m.MSpanInuse <= m.MSpanSys && m.MCacheInuse <= m.MCacheSys,
        "StackInuse <= StackSys, MSpanInuse <= MSpanSys, MCacheInuse <= MCacheSys");
  check(m.Lookups == 0 && m.EnableGC && !m.DebugGC, "Lookups == 0, EnableGC, !DebugGC");
  check(m.GCCPUFraction >= 0 && m.GCCPUFraction <= 1, "0 <= GCCPUFraction <= 1");
  check(m.NumForcedGC >= 2 && m.NumGC >= m.NumForcedGC, "NumGC >= NumForcedGC >= 2 (this sample forces two)");
  check(m.NumGC > 0 && m.LastGC == m.PauseEnd[(m.NumGC + 255) % 256], "LastGC == PauseEnd[(NumGC+255)%256]");
  unsigned long long pauses = 0;
  for (const auto& p : m.PauseNs) pauses += p;
  check(m.NumGC > 256 ? pauses <= m.PauseTotalNs : pauses == m.PauseTotalNs,
        "PauseTotalNs == sum of PauseNs (while NumGC <= 256)");
  bool sizes = true;
  unsigned long long mallocs = 0, frees = 0;
  int i = 0;
  for (const auto& c : m.BySize) {
    sizes = sizes && c.Size == kBySizeSizes[i++] && c.Frees <= c.Mallocs;
    mallocs += c.Mallocs;
    frees += c.Frees;
  }
  check(sizes && i == 61, "BySize: 61 classes 0, 8, 16, 24, 32, 48 .. 18432; Frees <= Mallocs");
  check(mallocs < m.Mallocs && frees < m.Frees,
        "sum of BySize Mallocs/Frees < Mallocs/Frees (tiny, large, > 18432)");
}

}  // namespace

int main() {
  gort::Runtime rt;  // reads GOGC, GOMEMLIMIT, GOMAXPROCS and GODEBUG (gctrace=1) as Go does

  gort::Root<Node> tree(make_tree(kLongLivedDepth));       // long-lived, kept by a Root
  gort::Root<Ring> recent(gort::make_array<gort::Ref<Record>>(kRingSize));  // mid-lived records
  size_t ring_pos = 0;

  long checksum = 0;
  for (int round = 0; round < kRounds; round++) {
    checksum += one_round(round, recent.get(), ring_pos);
    if (round == kRounds / 2) gort::GC();  // a forced collection halfway through
  }
  recent = gort::Root<Ring>();  // drop the ring: its records become garbage
  gort::GC();                   // and this forced collection frees them

  long nodes = count_nodes(tree.get());
  std::printf("workload: long-lived tree of %ld nodes survived %d rounds of garbage (checksum %ld)\n",
              nodes, kRounds, checksum);

  gort::MemStats ms;
  gort::ReadMemStats(&ms);  // one consistent snapshot, taken with the world briefly stopped
  print_memstats(ms);
  check_identities(ms);
  if (nodes != (2L << kLongLivedDepth) - 1) {
    std::printf("check: the long-lived tree lost nodes: FAILED\n");
    failures++;
  }
  return failures == 0 ? 0 : 1;
}
