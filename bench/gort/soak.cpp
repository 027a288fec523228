// soak: a steady mixed workload on gort for a given time, sampling memory and goroutines.
// Usage: bench-soak SECONDS [INTERVAL_SECONDS]   (INTERVAL_SECONDS = 10 by default)
//
// What runs, all at once, until SECONDS have passed (every part keeps a bounded amount of live
// data, so flat memory is the expected result and growth means a leak):
//  - churn workers: build and drop small graphs (a tree of Node{Ref, Ref, int64}, a
//    make_array<Ref<Node>> list, a make_array<double>), wrapped in an Item that also holds a
//    std::string; one Item in four goes into the worker's ring of 512 (mid-lived), whose evicted
//    and randomly picked entries are verified; plus std::string / std::vector / std::sort work;
//  - a pipeline: producers send Msg objects over a buffered Chan (capacity 64) and, one in four,
//    an unbuffered one; non-blocking select (on_default) retried after sleep_for, i.e. timeouts
//    via sleep_for; consumers alternate between a polling select (default case, then sleep_for)
//    and a blocking select woken by a ticker (Go's time.Ticker: a Chan of capacity 1, ticks
//    dropped when full); each consumer checks every message's contents and that each producer's
//    messages arrive in order on each channel;
//  - a ping-pong pair exchanging managed nodes with blocking send/recv on unbuffered channels;
//  - fan-out/fan-in: rounds of 4..64 short-lived goroutines (one in eight starts two more and
//    waits for them), joined with a WaitGroup, their results collected over a buffered Chan;
//  - timers: goroutines sleeping 0 us .. 10 ms; a sleep_for that returns early fails a check;
//  - finalizers and cleanups: batches of objects with SetFinalizer and/or AddCleanup (one cleanup
//    in four cancelled with Stop()), dropped; the finalizer checks its object's contents and that
//    a Weak to it already resolves to nullptr, and resurrects one object in 32 into a ring
//    (evicted later); a cancelled cleanup that runs fails a check;
//  - weak pointers: 128 live objects whose Weak must resolve to them, plus Weaks to objects that
//    died, which must stop resolving within a few collections;
//  - GOMAXPROCS changes between 1 and the hardware thread count every 2-5 s;
//  - std::threads started continuously (two at a time) that attach (gort::AttachThread),
//    allocate, keep a few trees in std::vector<gort::Root<Node>>, exchange managed nodes with a
//    server goroutine over channels, update the shared map, then detach and exit;
//  - a std::map<int, Slot> under a gort::Mutex, updated by several goroutines and the threads:
//    each update moves an amount from one key to another (the values always sum to 0) and may
//    replace the key's managed Blob (held by a gort::Root in the map); sometimes the lock is held
//    across sleep_for (contention, starvation mode).
//
// Every INTERVAL seconds the main thread (attached, not a goroutine) pauses the parts that
// allocate at their next loop iteration (a gate), runs collections (gort::GC, which also
// finishes the sweep) until HeapObjects stops falling (objects with destructors are freed a
// cycle after the destructor thread ran), samples, and lets them go on: a few hundred ms.
// So HeapObjects is the live data after full collections rather than a point of the GC's
// saw-tooth, and the goroutine count holds no short-lived goroutine: both are exact enough for
// a 5% threshold. A line on stdout:
//   soak t=SECONDS rss_mib=.. heap_objects=.. heap_alloc_mib=.. sys_mib=.. num_gc=.. goroutines=..
//        finalizers=.. checks_failed=.. (then more key=value pairs: what each part did so far, and
//        where memory is: MemStats' *Inuse/*Sys, OS threads, glibc malloc's in-use bytes and arenas)
// At the end, with everything stopped and collected, the final accounting (messages sent ==
// received, Mutex-protected counts, finalizers and cleanups all run, ...) and a summary:
//   soak-summary warmup_end_s=.. baseline_t=.. rss_growth_pct=.. heap_objects_growth_pct=..
//        goroutines_growth_pct=.. checks_failed=.. result=PASS|FAIL
// The warm-up is the first 20% of the run (at least one interval); growth is the largest
// increase over the first sample at or after its end, in percent. PASS: each <= 5% and no check
// failed. Exit status 0 on PASS, 1 on FAIL, 2 on bad usage. A watchdog thread sends SIGQUIT
// (gort's goroutine dump) if the program makes no progress for max(60 s, 3 intervals).
#include <gort/gort.hpp>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kWorkers = 3;
constexpr size_t kRing = 512;          // Items kept per worker
constexpr int kProducers = 2;
constexpr int kConsumers = 2;
constexpr size_t kWorkCap = 64;        // the buffered channel's capacity
constexpr int kTimers = 4;
constexpr int kThreadSpawners = 2;
constexpr int kMapUpdaters = 3;
constexpr int kMapKeys = 256;
constexpr size_t kLiveWeak = 128;
constexpr size_t kResurrectRing = 64;
constexpr int kMaxGateMembers = 32;
constexpr int kMaxFailuresShown = 40;

// ---------------------------------------------------------------------------------------------
// Counters and checks

std::atomic<bool> g_stop{false};
std::atomic<int64_t> g_checks_failed{0};

std::atomic<int64_t> g_items_made{0}, g_items_destroyed{0}, g_churn_iters{0};
std::atomic<int64_t> g_work_sent{0}, g_direct_sent{0}, g_received{0}, g_direct_timeouts{0}, g_consumer_idle{0};
std::atomic<int64_t> g_pingpongs{0};
std::atomic<int64_t> g_spawned{0};
std::atomic<int64_t> g_timers_fired{0}, g_timer_late_max_us{0};
std::atomic<int64_t> g_fin_set{0}, g_fin_run{0}, g_clean_added{0}, g_clean_stopped{0}, g_clean_run{0};
std::atomic<int64_t> g_resurrected{0};
std::atomic<int64_t> g_weak_live_checks{0}, g_weak_cleared{0}, g_weak_pending{0};
std::atomic<int64_t> g_procs_changes{0};
std::atomic<int64_t> g_threads_started{0}, g_thread_exchanges{0};
std::atomic<int64_t> g_map_ops_atomic{0}, g_exceptions{0};

std::atomic<int64_t> g_heartbeat_ns{0};
std::atomic<const char*> g_stage{"start"};
std::atomic<bool> g_done{false};

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }
void heartbeat(const char* stage) {
  g_stage.store(stage);
  g_heartbeat_ns.store(now_ns());
}

// Counts a failed check and prints the first ones. FAIL(printf-like arguments): a macro, since
// clang's -fsplit-stack cannot compile a C variadic function; the format stays checked, and the
// libc calls stay out of the caller (out of line).
template <class Format>
__attribute__((noinline)) void report_failure(const Format& format) {
  int64_t n = g_checks_failed.fetch_add(1) + 1;
  if (n > kMaxFailuresShown) return;
  char buf[512];
  format(buf, sizeof buf);
  std::fprintf(stderr, "soak: check failed: %s%s\n", buf, n == kMaxFailuresShown ? " (no more shown)" : "");
}
#define FAIL(...) report_failure([&](char* buf_, size_t size_) { std::snprintf(buf_, size_, __VA_ARGS__); })

void atomic_max(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s((seed + 1) * 0x9E3779B97F4A7C15ull) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

int64_t mix(int64_t x) {
  uint64_t z = static_cast<uint64_t>(x) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<int64_t>(z ^ (z >> 31));
}

// Sleeps up to d in slices, returning early once the run is stopping.
void sleep_unless_stopped(std::chrono::milliseconds d) {
  for (auto left = d; left > 0ms && !g_stop.load(std::memory_order_relaxed); left -= 100ms)
    gort::sleep_for(std::min(left, std::chrono::milliseconds(100)));
}

// ---------------------------------------------------------------------------------------------
// The gate: the main thread pauses every member at its next pass() to sample a quiet program.

class Gate {
 public:
  int join(const char* name) {  // main thread, before the members start
    names_[n_] = name;
    return n_++;
  }
  void pass(int id) {
    uint64_t e = epoch_.load(std::memory_order_acquire);
    if (!(e & 1)) [[likely]] return;
    arrived_[id].store(e, std::memory_order_release);
    while (epoch_.load(std::memory_order_acquire) == e) gort::sleep_for(100us);
  }
  // Waits until every member is paused; false (and *missing filled) after the timeout.
  bool pause(std::chrono::milliseconds timeout, std::string* missing) {
    uint64_t e = epoch_.fetch_add(1) + 1;  // odd: paused
    auto deadline = Clock::now() + timeout;
    for (;;) {
      int here = 0;
      for (int i = 0; i < n_; i++) here += arrived_[i].load(std::memory_order_acquire) == e;
      if (here == n_) return true;
      if (Clock::now() > deadline) {
        for (int i = 0; i < n_; i++)
          if (arrived_[i].load() != e) *missing += std::string(missing->empty() ? "" : ",") + names_[i];
        return false;
      }
      gort::sleep_for(100us);
    }
  }
  void resume() { epoch_.fetch_add(1); }
  int members() const { return n_; }

 private:
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> arrived_[kMaxGateMembers] = {};
  const char* names_[kMaxGateMembers] = {};
  int n_ = 0;
};

Gate g_gate;

// ---------------------------------------------------------------------------------------------
// Churn workers

struct Node {
  gort::Ref<Node> left, right;
  int64_t v = 0;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};

// Top-down: the parent is held by this frame while its children are built.
Node* make_tree(int depth, int64_t v, int64_t* sum) {
  Node* n = gort::make<Node>();
  n->v = v;
  *sum += v;
  if (depth > 0) {
    n->left = make_tree(depth - 1, (v * 2) % 1000003, sum);
    n->right = make_tree(depth - 1, (v * 2 + 1) % 1000003, sum);
  }
  return n;
}

int64_t tree_sum(const Node* n) { return n ? n->v + tree_sum(n->left.get()) + tree_sum(n->right.get()) : 0; }

struct Item {
  uint64_t id = 0;
  int depth = 0;
  int64_t sum = 0;
  gort::Ref<Node> tree;
  gort::Ref<gort::Array<double>> vals;
  gort::Ref<gort::Array<gort::Ref<Node>>> list;
  std::string name;
  Item() { g_items_made.fetch_add(1, std::memory_order_relaxed); }
  ~Item() { g_items_destroyed.fetch_add(1, std::memory_order_relaxed); }
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;
  void trace(gort::Tracer& t) const {
    t.visit(tree);
    t.visit(vals);
    t.visit(list);
  }
};
using ItemRing = gort::Array<gort::Ref<Item>>;

std::string item_name(uint64_t id, int depth) {
  std::string s = "item-";
  s += std::to_string(id);
  s += '-';
  s.append(static_cast<size_t>(depth), 'x');
  return s;
}

// shape: any number; the same shape gives the same object count and sizes.
Item* build_item(uint64_t id, uint32_t shape) {
  Item* it = gort::make<Item>();
  it->id = id;
  it->depth = 1 + static_cast<int>(shape % 7);
  it->tree = make_tree(it->depth, static_cast<int64_t>(id % 1000003), &it->sum);
  auto* vals = gort::make_array<double>(16 + shape % 240);
  for (size_t k = 0; k < vals->size(); k++) (*vals)[k] = static_cast<double>(id % 4096) * 0.5 + static_cast<double>(k);
  it->vals = vals;
  auto* list = gort::make_array<gort::Ref<Node>>(8 + shape % 56);
  for (size_t k = 0; k < list->size(); k++) {
    Node* n = gort::make<Node>();
    n->v = static_cast<int64_t>(id ^ k);
    if (k > 0) n->left = (*list)[k - 1];
    (*list)[k] = n;
  }
  it->list = list;
  it->name = item_name(id, it->depth);
  return it;
}

void verify_item(const Item* it, const char* where) {
  if (tree_sum(it->tree.get()) != it->sum) FAIL("%s item %llu: tree sum changed", where, (unsigned long long)it->id);
  const auto& vals = *it->vals;
  for (size_t k = 0; k < vals.size(); k++) {
    if (vals[k] != static_cast<double>(it->id % 4096) * 0.5 + static_cast<double>(k)) {
      FAIL("%s item %llu: vals[%zu] changed", where, (unsigned long long)it->id, k);
      break;
    }
  }
  const auto& list = *it->list;
  for (size_t k = 0; k < list.size(); k++) {
    const Node* n = list[k].get();
    if (!n || n->v != static_cast<int64_t>(it->id ^ k) || (k > 0 && n->left.get() != list[k - 1].get())) {
      FAIL("%s item %llu: list[%zu] changed", where, (unsigned long long)it->id, k);
      break;
    }
  }
  if (it->name != item_name(it->id, it->depth)) FAIL("%s item %llu: name changed", where, (unsigned long long)it->id);
}

void churn_worker(int gid, int w) {
  Rng rng(100 + static_cast<uint64_t>(w));
  gort::Root<ItemRing> ring(gort::make_array<gort::Ref<Item>>(kRing));
  size_t pos = 0;
  std::vector<std::string> words;
  for (uint64_t iter = 0; !g_stop.load(std::memory_order_relaxed); ++iter) {
    g_gate.pass(gid);
    uint64_t id = (static_cast<uint64_t>(w) << 40) | iter;
    // One Item in four is kept. Ring slot i always holds an Item of shape i, so that a full
    // ring holds the same number of objects whatever it was filled with.
    bool keep = rng.below(4) == 0;
    Item* it = build_item(id, keep ? static_cast<uint32_t>(pos) : rng.below(1u << 20));
    if (keep) {
      if (const Item* old = (*ring)[pos].get()) verify_item(old, "evicted");
      (*ring)[pos] = it;
      pos = (pos + 1) % kRing;
    }
    if (const Item* r = (*ring)[rng.below(kRing)].get()) verify_item(r, "ring");

    std::string s = it->name;
    s += '/';
    s += std::to_string(rng.below(100000));
    if (s.compare(0, 5, "item-") != 0 || s.find('/') == std::string::npos) FAIL("string work: %s", s.c_str());
    words.push_back(std::move(s));
    if (words.size() >= 64) {
      std::sort(words.begin(), words.end());
      if (!std::is_sorted(words.begin(), words.end())) FAIL("std::sort on a goroutine");
      words.clear();
    }
    g_churn_iters.fetch_add(1, std::memory_order_relaxed);
    if (iter % 32 == 31) gort::sleep_for(std::chrono::microseconds(rng.below(200)));
  }
}

// ---------------------------------------------------------------------------------------------
// Pipeline: producers, consumers, ticker; ping-pong

struct Msg {
  int64_t producer = 0, seq = 0, check = 0;
  gort::Ref<gort::Array<int64_t>> payload;
  void trace(gort::Tracer& t) const { t.visit(payload); }
};

Msg* make_msg(int p, int64_t seq, Rng& rng) {
  Msg* m = gort::make<Msg>();
  m->producer = p;
  m->seq = seq;
  auto* pl = gort::make_array<int64_t>(1 + rng.below(32));
  for (size_t k = 0; k < pl->size(); k++) (*pl)[k] = seq * 7 + static_cast<int64_t>(k);
  m->payload = pl;
  m->check = mix(p * 1000003 + seq) ^ static_cast<int64_t>(pl->size());
  return m;
}

bool msg_ok(const Msg* m) {
  if (m->producer < 0 || m->producer >= kProducers) return false;
  const auto& pl = *m->payload;
  if (m->check != (mix(m->producer * 1000003 + m->seq) ^ static_cast<int64_t>(pl.size()))) return false;
  for (size_t k = 0; k < pl.size(); k++)
    if (pl[k] != m->seq * 7 + static_cast<int64_t>(k)) return false;
  return true;
}

void producer(int gid, int p, gort::Chan<Msg*> work, gort::Chan<Msg*> direct) {
  Rng rng(200 + static_cast<uint64_t>(p));
  for (int64_t seq = 0; !g_stop.load(std::memory_order_relaxed); ++seq) {
    g_gate.pass(gid);
    Msg* m = make_msg(p, seq, rng);
    bool sent = false;
    if (seq % 4 == 0) {
      // Hand it straight to a consumer blocked in select, giving up after ~1 ms.
      for (int tries = 0; tries < 5 && !sent; ++tries) {
        if (gort::select(gort::on_send(direct, m), gort::on_default()) == 0) sent = true;
        else gort::sleep_for(200us);
      }
      if (sent) g_direct_sent.fetch_add(1, std::memory_order_relaxed);
      else g_direct_timeouts.fetch_add(1, std::memory_order_relaxed);
    }
    while (!sent) {
      if (gort::select(gort::on_send(work, m), gort::on_default()) == 0) {
        sent = true;
        g_work_sent.fetch_add(1, std::memory_order_relaxed);
      } else {
        gort::sleep_for(100us);
        g_gate.pass(gid);
      }
    }
    if (seq % 16 == 15) gort::sleep_for(std::chrono::microseconds(rng.below(300)));
  }
}

void consumer(int gid, int c, gort::Chan<Msg*> work, gort::Chan<Msg*> direct, gort::Chan<int64_t> tick) {
  Rng rng(300 + static_cast<uint64_t>(c));
  int64_t last[2][kProducers];
  for (auto& row : last) std::fill(std::begin(row), std::end(row), -1);
  bool work_open = true, direct_open = true;
  gort::Chan<Msg*> never;  // stands in for a closed case (a nil channel in Go)
  while (work_open || direct_open) {
    g_gate.pass(gid);
    std::optional<Msg*> a, b;
    std::optional<int64_t> t;
    int k;
    if (rng.below(2) == 0) {  // blocking: a message, or the next tick
      k = gort::select(gort::on_recv(work_open ? work : never, a), gort::on_recv(direct_open ? direct : never, b),
                       gort::on_recv(tick, t));
    } else {
      k = gort::select(gort::on_recv(work_open ? work : never, a), gort::on_recv(direct_open ? direct : never, b),
                       gort::on_default());
      if (k == 2) {  // nothing ready: the timeout, by sleep_for
        g_consumer_idle.fetch_add(1, std::memory_order_relaxed);
        gort::sleep_for(std::chrono::microseconds(50 + rng.below(250)));
        continue;
      }
    }
    if (k == 2) continue;  // a tick
    std::optional<Msg*>& got = k == 0 ? a : b;
    if (!got) {
      (k == 0 ? work_open : direct_open) = false;
      continue;
    }
    const Msg* m = *got;
    if (!msg_ok(m)) {
      FAIL("consumer %d: message %lld from producer %lld is corrupt", c, (long long)m->seq, (long long)m->producer);
      continue;
    }
    int64_t& prev = last[k][m->producer];
    if (m->seq <= prev)
      FAIL("consumer %d: producer %lld's message %lld arrived after %lld on the %s channel", c, (long long)m->producer,
           (long long)m->seq, (long long)prev, k == 0 ? "buffered" : "unbuffered");
    prev = m->seq;
    g_received.fetch_add(1, std::memory_order_relaxed);
  }
}

// Go's time.Ticker: a channel of capacity 1, a tick dropped when the last one was not taken.
void ticker(gort::Chan<int64_t> tick) {
  for (int64_t n = 0; !g_stop.load(std::memory_order_relaxed); ++n) {
    gort::sleep_for(500us);
    gort::select(gort::on_send(tick, n), gort::on_default());
  }
}

void pinger(int gid, gort::Chan<Node*> ping, gort::Chan<Node*> pong) {
  Rng rng(400);
  for (int64_t i = 0; !g_stop.load(std::memory_order_relaxed); ++i) {
    g_gate.pass(gid);
    Node* n = gort::make<Node>();
    n->v = i;
    ping.send(n);
    std::optional<Node*> r = pong.recv();
    if (!r || (*r)->v != i + 1 || (*r)->left.get() != n) FAIL("ping-pong %lld: wrong reply", (long long)i);
    g_pingpongs.fetch_add(1, std::memory_order_relaxed);
    gort::sleep_for(std::chrono::microseconds(rng.below(100)));
  }
  ping.close();
}

void ponger(gort::Chan<Node*> ping, gort::Chan<Node*> pong) {
  while (std::optional<Node*> n = ping.recv()) {
    Node* r = gort::make<Node>();
    r->v = (*n)->v + 1;
    r->left = *n;
    pong.send(r);
  }
}

// ---------------------------------------------------------------------------------------------
// Fan-out / fan-in

int64_t child_value(uint64_t round, int i) {
  int64_t k = i % 16 + 1;
  int64_t v = k * static_cast<int64_t>(round % 100000 + static_cast<uint64_t>(i)) +
              static_cast<int64_t>(std::to_string(i).size());
  if (i % 8 == 0) v += 3 * (2 * i + 1);  // two grandchildren: (i + 0) * 3 and (i + 1) * 3
  return v;
}

void grandchild(gort::Chan<int64_t> out, gort::WaitGroup* wg, int v) {
  Node* n = gort::make<Node>();
  n->v = v * 3;
  out.send(n->v);
  wg->Done();
}

void child(gort::Chan<int64_t> results, gort::WaitGroup* wg, uint64_t round, int i) {
  int64_t k = i % 16 + 1;
  Node* head = nullptr;
  for (int64_t j = 0; j < k; j++) {
    Node* n = gort::make<Node>();
    n->v = static_cast<int64_t>(round % 100000 + static_cast<uint64_t>(i));
    n->left = head;
    head = n;
  }
  int64_t v = 0;
  for (const Node* n = head; n; n = n->left.get()) v += n->v;
  v += static_cast<int64_t>(std::to_string(i).size());
  if (i % 8 == 0) {
    gort::Chan<int64_t> parts(2);
    gort::WaitGroup inner;
    inner.Add(2);
    gort::go(grandchild, parts, &inner, i);
    gort::go(grandchild, parts, &inner, i + 1);
    inner.Wait();
    v += *parts.recv() + *parts.recv();
  }
  results.send(v);
  wg->Done();
}

void fanout(int gid) {
  Rng rng(500);
  for (uint64_t round = 0; !g_stop.load(std::memory_order_relaxed); ++round) {
    g_gate.pass(gid);
    int n = 4 + static_cast<int>(rng.below(61));
    gort::Chan<int64_t> results(static_cast<size_t>(n));
    gort::WaitGroup wg;
    wg.Add(n);
    for (int i = 0; i < n; i++) gort::go(child, results, &wg, round, i);
    wg.Wait();
    results.close();
    int64_t sum = 0, want = 0, count = 0;
    while (std::optional<int64_t> v = results.recv()) {
      sum += *v;
      count++;
    }
    for (int i = 0; i < n; i++) want += child_value(round, i);
    if (count != n || sum != want)
      FAIL("fan-out round %llu: %lld results summing to %lld, want %d summing to %lld", (unsigned long long)round,
           (long long)count, (long long)sum, n, (long long)want);
    g_spawned.fetch_add(n + 2 * ((n + 7) / 8), std::memory_order_relaxed);
    gort::sleep_for(std::chrono::microseconds(rng.below(500)));
  }
}

// ---------------------------------------------------------------------------------------------
// Timers

void timer_loop(int t) {
  static constexpr std::chrono::microseconds kDurations[] = {0us, 20us, 100us, 500us, 1000us, 3000us, 10000us};
  Rng rng(600 + static_cast<uint64_t>(t));
  while (!g_stop.load(std::memory_order_relaxed)) {
    auto d = kDurations[rng.below(std::size(kDurations))];
    auto t0 = Clock::now();
    gort::sleep_for(d);
    auto el = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    if (el < d) FAIL("sleep_for(%lld us) returned after %lld us", (long long)d.count(), (long long)el.count());
    atomic_max(g_timer_late_max_us, (el - d).count());
    g_timers_fired.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------------
// Finalizers, cleanups, resurrection

struct FChild {
  int64_t v[3];
};
struct FObj {
  int64_t id = 0, check = 0;
  gort::Ref<FChild> child;
  void trace(gort::Tracer& t) const { t.visit(child); }
};
struct CleanArg {
  int64_t id;
  bool stopped;
  gort::Weak<FObj> w;
};

// Objects resurrected by their finalizer, kept a while (written by the finalizer goroutine,
// checked by the maker). Global: a late finalizer may run until the Runtime ends; main empties
// the ring (and closes it) before that, so the Root holds nothing when it is destroyed.
struct Resurrected {
  gort::Mutex mu;
  gort::Root<gort::Array<gort::Ref<FObj>>> ring;
  bool open = false;
};
Resurrected g_res;

bool fobj_ok(const FObj* o) {
  const FChild* c = o->child.get();
  return o->check == mix(o->id) && c && c->v[0] == o->id && c->v[1] == o->id * 2 && c->v[2] == o->id * 3;
}

void on_finalize(FObj* o, const gort::Weak<FObj>& w) {
  if (!fobj_ok(o)) FAIL("finalizer of object %lld: contents changed", (long long)o->id);
  if (w.get() != nullptr) FAIL("finalizer of object %lld: a Weak to it still resolves", (long long)o->id);
  if (o->id % 32 == 0) {
    std::lock_guard<gort::Mutex> lk(g_res.mu);
    if (g_res.open) {
      auto& slot = (*g_res.ring)[static_cast<size_t>(o->id / 32) % kResurrectRing];
      if (const FObj* old = slot.get(); old && !fobj_ok(old)) FAIL("resurrected object %lld: contents changed", (long long)old->id);
      slot = o;
      g_resurrected.fetch_add(1, std::memory_order_relaxed);
    }
  }
  g_fin_run.fetch_add(1, std::memory_order_relaxed);
}

void on_cleanup(CleanArg& a) {
  if (a.stopped) FAIL("cleanup of object %lld ran after Stop()", (long long)a.id);
  if (a.w.get() != nullptr) FAIL("cleanup of object %lld: a Weak to it still resolves", (long long)a.id);
  g_clean_run.fetch_add(1, std::memory_order_relaxed);
}

// Made in a call that returns, so that no live frame keeps them.
__attribute__((noinline)) void make_finalized_batch(int64_t base, int n, Rng& rng) {
  for (int i = 0; i < n; i++) {
    FObj* o = gort::make<FObj>();
    o->id = base + i;
    o->check = mix(o->id);
    FChild* c = gort::make<FChild>();
    c->v[0] = o->id;
    c->v[1] = o->id * 2;
    c->v[2] = o->id * 3;
    o->child = c;
    int kind = i % 4;  // 0, 1: finalizer; 2: finalizer and cleanup; 3: cleanup
    if (kind != 3) {
      gort::SetFinalizer(o, [w = gort::Weak<FObj>(o)](FObj* p) { on_finalize(p, w); });
      g_fin_set.fetch_add(1, std::memory_order_relaxed);
    }
    if (kind >= 2) {
      bool stop = rng.below(4) == 0;
      gort::Cleanup cl = gort::AddCleanup(o, [](CleanArg& a) { on_cleanup(a); }, CleanArg{o->id, stop, gort::Weak<FObj>(o)});
      g_clean_added.fetch_add(1, std::memory_order_relaxed);
      if (stop) {
        cl.Stop();
        g_clean_stopped.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

void finalizer_maker(int gid) {
  Rng rng(700);
  for (int64_t base = 0; !g_stop.load(std::memory_order_relaxed); base += 32) {
    g_gate.pass(gid);
    make_finalized_batch(base, 32, rng);
    if (base % 1024 == 0) {
      std::lock_guard<gort::Mutex> lk(g_res.mu);
      if (g_res.open)
        for (const auto& r : *g_res.ring)
        if (const FObj* o = r.get(); o && !fobj_ok(o)) FAIL("resurrected object %lld: contents changed", (long long)o->id);
    }
    gort::sleep_for(std::chrono::microseconds(500 + rng.below(1500)));
  }
}

// ---------------------------------------------------------------------------------------------
// Weak pointers

struct WObj {
  gort::Ref<WObj> peer;
  int64_t id = 0, check = 0;
  void trace(gort::Tracer& t) const { t.visit(peer); }
};

// An object and the child it points to.
WObj* make_wobj(int64_t id) {
  WObj* o = gort::make<WObj>();
  o->id = id;
  o->check = mix(id);
  WObj* c = gort::make<WObj>();
  c->id = -id;
  c->check = mix(-id);
  o->peer = c;
  return o;
}

bool wobj_ok(const WObj* o) {
  const WObj* c = o->peer.get();
  return o->check == mix(o->id) && c && c->id == -o->id && c->check == mix(c->id);
}

struct PendingWeak {
  gort::Weak<WObj> w;
  uint32_t gc;   // NumGC when it was made (or last found still resolving)
  int retries;
};

__attribute__((noinline)) void make_dead_weaks(int64_t base, int n, uint32_t gc, std::deque<PendingWeak>& out) {
  for (int i = 0; i < n; i++) out.push_back({gort::Weak<WObj>(make_wobj(base + i)), gc, 0});
}

// True if w still resolves; out of line, so the target's address does not stay in the caller.
__attribute__((noinline)) bool resolves(const gort::Weak<WObj>& w) { return w.get() != nullptr; }

uint32_t num_gc() {
  gort::MemStats ms;
  gort::ReadMemStats(&ms);
  return ms.NumGC;
}

void weak_checker(int gid) {
  Rng rng(800);
  int64_t next_id = 1;
  gort::Root<gort::Array<gort::Ref<WObj>>> live(gort::make_array<gort::Ref<WObj>>(kLiveWeak));
  std::vector<gort::Weak<WObj>> live_w(kLiveWeak);
  for (size_t i = 0; i < kLiveWeak; i++) {
    WObj* o = make_wobj(next_id++);
    (*live)[i] = o;
    live_w[i] = gort::Weak<WObj>(o);
  }
  std::deque<PendingWeak> pending;
  uint32_t gc = num_gc();
  auto last_scan = Clock::now();
  while (!g_stop.load(std::memory_order_relaxed)) {
    g_gate.pass(gid);
    for (int r = 0; r < 4; r++) {  // replace a few live objects: their Weaks go to pending
      size_t i = rng.below(kLiveWeak);
      pending.push_back({std::move(live_w[i]), gc, 0});
      WObj* o = make_wobj(next_id++);
      (*live)[i] = o;
      live_w[i] = gort::Weak<WObj>(o);
    }
    for (size_t i = 0; i < kLiveWeak; i++) {
      const WObj* o = (*live)[i].get();
      if (live_w[i].get() != o) FAIL("Weak to live object %lld does not resolve to it", (long long)o->id);
      if (!wobj_ok(o)) FAIL("weak-tracked live object %lld: contents changed", (long long)o->id);
      if (gort::Weak<WObj>(const_cast<WObj*>(o)) != live_w[i]) FAIL("two Weaks to object %lld differ", (long long)o->id);
    }
    g_weak_live_checks.fetch_add(kLiveWeak, std::memory_order_relaxed);
    make_dead_weaks(next_id, 8, gc, pending);
    next_id += 8;

    // Every 50 ms: a Weak made 3 or more collections ago must be cleared. Looking at a target
    // while a mark runs shades it (Go's rule), so a Weak found still resolving gets 3 more
    // collections, 10 times at most.
    if (Clock::now() - last_scan >= 50ms) {
      last_scan = Clock::now();
      gc = num_gc();
      size_t n = pending.size();
      for (size_t k = 0; k < n; k++) {
        PendingWeak p = std::move(pending.front());
        pending.pop_front();
        if (gc - p.gc < 3) {
          pending.push_back(std::move(p));
        } else if (!resolves(p.w)) {
          g_weak_cleared.fetch_add(1, std::memory_order_relaxed);
        } else if (++p.retries >= 10) {
          FAIL("a Weak to a dropped object still resolves after %d collections", 3 * p.retries);
        } else {
          p.gc = gc;
          pending.push_back(std::move(p));
        }
      }
    }
    g_weak_pending.store(static_cast<int64_t>(pending.size()), std::memory_order_relaxed);
    gort::sleep_for(1ms);
  }
  // The rest: let the collector clear them before the final check.
  for (int round = 0; round < 20 && !pending.empty(); round++) {
    gort::GC();
    size_t n = pending.size();
    for (size_t k = 0; k < n; k++) {
      PendingWeak p = std::move(pending.front());
      pending.pop_front();
      if (resolves(p.w)) pending.push_back(std::move(p));
      else g_weak_cleared.fetch_add(1, std::memory_order_relaxed);
    }
    gort::sleep_for(5ms);
  }
  if (!pending.empty()) FAIL("%zu Weaks to dropped objects still resolve after the run", pending.size());
  g_weak_pending.store(0);
}

// ---------------------------------------------------------------------------------------------
// The shared map

struct Blob {
  int64_t key = 0, stamp = 0;
};
struct Slot {
  int64_t value = 0;
  gort::Root<Blob> blob;
};
struct SharedMap {
  gort::Mutex mu;
  std::map<int, Slot> m;
  int64_t ops = 0;  // only under mu: compared with g_map_ops_atomic at the end
};
SharedMap* g_map = nullptr;

void map_update(Rng& rng, int64_t stamp, bool may_sleep) {
  {
    std::lock_guard<gort::Mutex> lk(g_map->mu);
    int a = static_cast<int>(rng.below(kMapKeys)), b = static_cast<int>(rng.below(kMapKeys));
    int64_t d = 1 + rng.below(100);
    Slot& sa = g_map->m[a];
    sa.value += d;
    if (!sa.blob || rng.below(4) == 0) {
      Blob* bl = gort::make<Blob>();
      bl->key = a;
      bl->stamp = stamp;
      sa.blob = bl;
    }
    Slot& sb = g_map->m[b];
    sb.value -= d;
    if (sb.value == 0 && rng.below(2) == 0) g_map->m.erase(b);
    g_map->ops++;
    if (may_sleep && rng.below(64) == 0) gort::sleep_for(50us);  // hold it a while: waiters park
  }
  g_map_ops_atomic.fetch_add(1, std::memory_order_relaxed);
}

void map_verify(const char* who) {
  std::lock_guard<gort::Mutex> lk(g_map->mu);
  int64_t sum = 0;
  for (const auto& entry : g_map->m) {  // not a structured binding: clang 14 cannot capture one
    int key = entry.first;
    const Slot& slot = entry.second;
    sum += slot.value;
    if (slot.blob && slot.blob->key != key) FAIL("%s: map blob of key %d holds key %lld", who, key, (long long)slot.blob->key);
  }
  if (sum != 0) FAIL("%s: map values sum to %lld, not 0", who, (long long)sum);
}

void map_updater(int gid, int u) {
  Rng rng(900 + static_cast<uint64_t>(u));
  for (int64_t i = 0; !g_stop.load(std::memory_order_relaxed); ++i) {
    g_gate.pass(gid);
    map_update(rng, i, true);
    if (i % 64 == 0) map_verify("map updater");
    if (i % 128 == 0) {  // C++ exceptions on a goroutine
      try {
        (void)std::stoi(std::string("not a number ") + std::to_string(i));
        FAIL("std::stoi accepted a non-number");
      } catch (const std::invalid_argument&) {
        g_exceptions.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (i % 8 == 7) gort::sleep_for(std::chrono::microseconds(rng.below(300)));
  }
}

// ---------------------------------------------------------------------------------------------
// Attached threads

struct Req {
  Node* node;
  int64_t v;
  gort::Chan<Node*> reply;
};

void thread_server(gort::Chan<Req> in) {
  while (std::optional<Req> r = in.recv()) {
    if (r->node->v != r->v) FAIL("server: request %lld carries node %lld", (long long)r->v, (long long)r->node->v);
    Node* n = gort::make<Node>();
    n->v = r->v * 3 + 1;
    n->left = r->node;
    r->reply.send(n);
  }
}

void thread_body(gort::Chan<Req> in, uint64_t tid) {
  gort::AttachThread attach;
  Rng rng(tid);
  std::vector<gort::Root<Node>> keep;
  std::vector<int64_t> keep_sums;
  gort::Chan<Node*> reply;
  int rounds = 20 + static_cast<int>(rng.below(40));
  for (int j = 0; j < rounds; j++) {
    int64_t sum = 0;
    Node* t = make_tree(2 + static_cast<int>(rng.below(4)), static_cast<int64_t>(tid % 1000) + j, &sum);
    if (j % 4 == 0) {
      keep.emplace_back(t);
      keep_sums.push_back(sum);
    }
    Node* q = gort::make<Node>();
    q->v = static_cast<int64_t>(tid) * 1000 + j;
    q->right = t;
    in.send(Req{q, q->v, reply});
    std::optional<Node*> r = reply.recv();
    if (!r || (*r)->v != q->v * 3 + 1 || (*r)->left.get() != q) FAIL("thread %llu: wrong reply %d", (unsigned long long)tid, j);
    g_thread_exchanges.fetch_add(1, std::memory_order_relaxed);
    if (j % 8 == 0) map_update(rng, -j, false);
    if (j % 16 == 15) gort::sleep_for(100us);
  }
  for (size_t k = 0; k < keep.size(); k++)
    if (tree_sum(keep[k].get()) != keep_sums[k]) FAIL("thread %llu: a rooted tree changed", (unsigned long long)tid);
}

void thread_spawner(int gid, int s, gort::Chan<Req> in) {
  Rng rng(1000 + static_cast<uint64_t>(s));
  for (uint64_t k = 0; !g_stop.load(std::memory_order_relaxed); ++k) {
    g_gate.pass(gid);
    uint64_t tid = (static_cast<uint64_t>(s) << 32) | k;
    std::thread t(thread_body, in, tid);
    gort::blocking([&t] { t.join(); });
    g_threads_started.fetch_add(1, std::memory_order_relaxed);
    gort::sleep_for(std::chrono::microseconds(rng.below(5000)));
  }
}

// ---------------------------------------------------------------------------------------------
// GOMAXPROCS

void procs_changer(int max_procs) {
  Rng rng(1100);
  while (!g_stop.load(std::memory_order_relaxed)) {
    sleep_unless_stopped(std::chrono::milliseconds(2000 + rng.below(3000)));
    if (g_stop.load()) break;
    int n = 1 + static_cast<int>(rng.below(static_cast<uint32_t>(max_procs)));
    gort::GOMAXPROCS(n);
    if (gort::GOMAXPROCS(0) != n) FAIL("GOMAXPROCS(%d) did not take", n);
    g_procs_changes.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling

double rss_mib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// The process's OS threads (/proc/self/status).
int os_threads() {
  int n = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "Threads: %d", &n) == 1) break;
    std::fclose(f);
  }
  return n;
}

struct Sample {
  double target, t, rss;
  uint64_t heap_objects;
  int goroutines;
};

constexpr double kMiB = 1024.0 * 1024.0;

void watchdog(int64_t limit_s) {
  while (!g_done.load()) {
    std::this_thread::sleep_for(1s);
    int64_t idle = (now_ns() - g_heartbeat_ns.load()) / 1000000000;
    if (idle > limit_s && !g_done.load()) {
      std::fprintf(stderr, "soak: no progress for %lld s in stage '%s': hang? sending SIGQUIT for a goroutine dump\n",
                   (long long)idle, g_stage.load());
      std::fflush(stdout);
      kill(getpid(), SIGQUIT);
      std::this_thread::sleep_for(20s);
      std::fprintf(stderr, "soak: still alive after SIGQUIT; aborting\n");
      std::abort();
    }
  }
}

double pct(double v, double base) { return base > 0 ? (v - base) * 100.0 / base : 0.0; }

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 0;
  double interval = argc > 2 ? std::atof(argv[2]) : 10;
  if (argc < 2 || argc > 3 || !(seconds > 0) || !(interval > 0) || interval > seconds) {
    std::fprintf(stderr, "usage: bench-soak SECONDS [INTERVAL_SECONDS=10]   (INTERVAL_SECONDS <= SECONDS)\n");
    return 2;
  }
  heartbeat("start");
  std::thread dog(watchdog, static_cast<int64_t>(std::max(60.0, 3 * interval)));

  int exit_code = 0;
  {
    gort::Runtime rt;
    const int procs0 = gort::GOMAXPROCS(0);
    const int max_procs = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));

    {
      std::lock_guard<gort::Mutex> lk(g_res.mu);
      g_res.ring = gort::make_array<gort::Ref<FObj>>(kResurrectRing);
      g_res.open = true;
    }
    SharedMap shared;
    g_map = &shared;

    // Channels live in this frame (main's stack is scanned) and in the goroutines' closures.
    gort::Chan<Msg*> work(kWorkCap), direct;
    gort::Chan<int64_t> tick(1);
    gort::Chan<Node*> ping, pong;
    gort::Chan<Req> server;

    gort::WaitGroup all, producers, spawners;
    auto start = [&all](auto fn, auto... args) {
      all.Add(1);
      gort::go([&all, fn, args...] {
        fn(args...);
        all.Done();
      });
    };
    for (int w = 0; w < kWorkers; w++) start(churn_worker, g_gate.join("churn"), w);
    for (int p = 0; p < kProducers; p++) {
      producers.Add(1);
      int gid = g_gate.join("producer");
      start([gid, p, work, direct, &producers] {
        producer(gid, p, work, direct);
        producers.Done();
      });
    }
    for (int c = 0; c < kConsumers; c++) start(consumer, g_gate.join("consumer"), c, work, direct, tick);
    start(ticker, tick);
    start(pinger, g_gate.join("pinger"), ping, pong);
    start(ponger, ping, pong);
    start(fanout, g_gate.join("fanout"));
    for (int t = 0; t < kTimers; t++) start(timer_loop, t);
    start(finalizer_maker, g_gate.join("finalizers"));
    start(weak_checker, g_gate.join("weak"));
    start(procs_changer, max_procs);
    start(thread_server, server);
    for (int s = 0; s < kThreadSpawners; s++) {
      spawners.Add(1);
      int gid = g_gate.join("threads");
      start([gid, s, server, &spawners] {
        thread_spawner(gid, s, server);
        spawners.Done();
      });
    }
    for (int u = 0; u < kMapUpdaters; u++) start(map_updater, g_gate.join("map"), u);

    const double warmup_end = std::max(interval, 0.2 * seconds);
    std::printf("soak-start seconds=%g interval=%g warmup_end_s=%g gomaxprocs=%d max_procs=%d gated=%d\n", seconds,
                interval, warmup_end, procs0, max_procs, g_gate.members());
    std::fflush(stdout);

    std::vector<Sample> samples;
    const auto t0 = Clock::now();
    auto elapsed = [&t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    for (int k = 1; k * interval <= seconds + 1e-9; k++) {
      const double target = k * interval;
      while (elapsed() < target) {
        heartbeat("running");
        double left = target - elapsed();
        gort::sleep_for(std::chrono::duration<double>(std::min(left, 1.0)));
      }
      heartbeat("sampling");
      auto p0 = Clock::now();
      std::string missing;
      if (!g_gate.pause(30s, &missing))
        FAIL("goroutines did not reach the sampling pause within 30 s: %s", missing.c_str());
      // Collect every 20 ms until HeapObjects has not fallen for 150 ms: an object with a
      // destructor (Items, closures holding Weaks) is freed by the first cycle after gort's
      // destructor thread ran its destructor, which can take up to 100 ms.
      gort::MemStats ms;
      gort::GC();
      gort::ReadMemStats(&ms);
      int gcs = 1;
      uint64_t low = ms.HeapObjects;
      for (auto fell = Clock::now(); gcs < 50 && Clock::now() - fell < 150ms; gcs++) {
        gort::sleep_for(20ms);
        gort::GC();
        gort::ReadMemStats(&ms);
        if (ms.HeapObjects + ms.HeapObjects / 1000 < low) fell = Clock::now();
        low = std::min(low, ms.HeapObjects);
      }
      int ng = gort::NumGoroutine();
      double rss = rss_mib();
      int threads_now = os_threads();
      struct mallinfo2 mi = mallinfo2();
      g_gate.resume();
      double pause_ms = std::chrono::duration<double, std::milli>(Clock::now() - p0).count();
      double t = elapsed();
      samples.push_back({target, t, rss, ms.HeapObjects, ng});
      int64_t fin_run = g_fin_run.load(), clean_run = g_clean_run.load();
      std::printf(
          "soak t=%.1f rss_mib=%.1f heap_objects=%llu heap_alloc_mib=%.2f sys_mib=%.1f num_gc=%u goroutines=%d "
          "finalizers=%lld checks_failed=%lld gomaxprocs=%d heap_inuse_mib=%.2f stack_inuse_mib=%.2f "
          "fin_pending=%lld cleanups=%lld cleanup_pending=%lld items_live=%lld weak_pending=%lld "
          "churn=%lld msgs=%lld spawned=%lld threads=%lld timers=%lld timer_late_max_ms=%.1f "
          "procs_changes=%lld pause_ms=%.1f sample_gcs=%d os_threads=%d malloc_inuse_mib=%.2f malloc_arena_mib=%.2f "
          "stack_sys_mib=%.2f heap_idle_mib=%.2f heap_released_mib=%.2f mspan_inuse_mib=%.2f mcache_inuse_mib=%.3f "
          "gc_sys_mib=%.2f other_sys_mib=%.2f\n",
          t, rss, (unsigned long long)ms.HeapObjects, ms.HeapAlloc / kMiB, ms.Sys / kMiB, ms.NumGC, ng,
          (long long)fin_run, (long long)g_checks_failed.load(), gort::GOMAXPROCS(0), ms.HeapInuse / kMiB,
          ms.StackInuse / kMiB, (long long)(g_fin_set.load() - fin_run), (long long)clean_run,
          (long long)(g_clean_added.load() - g_clean_stopped.load() - clean_run),
          (long long)(g_items_made.load() - g_items_destroyed.load()), (long long)g_weak_pending.load(),
          (long long)g_churn_iters.load(), (long long)g_received.load(), (long long)g_spawned.load(),
          (long long)g_threads_started.load(), (long long)g_timers_fired.load(),
          g_timer_late_max_us.exchange(0) / 1000.0, (long long)g_procs_changes.load(), pause_ms, gcs, threads_now,
          static_cast<double>(mi.uordblks + mi.hblkhd) / kMiB, static_cast<double>(mi.arena + mi.hblkhd) / kMiB,
          ms.StackSys / kMiB, ms.HeapIdle / kMiB, ms.HeapReleased / kMiB, ms.MSpanInuse / kMiB, ms.MCacheInuse / kMiB,
          ms.GCSys / kMiB, ms.OtherSys / kMiB);
      std::fflush(stdout);
    }

    // Stop everything, in dependency order, then account.
    heartbeat("stopping");
    g_stop = true;
    producers.Wait();
    work.close();
    direct.close();
    spawners.Wait();
    server.close();
    all.Wait();
    heartbeat("draining");
    gort::GOMAXPROCS(procs0);
    {
      std::lock_guard<gort::Mutex> lk(g_res.mu);
      g_res.open = false;
      g_res.ring.reset();
    }
    // Everything is garbage now but the map: finalizers, cleanups and destructors must all run.
    auto drained = [] {
      return g_fin_run.load() == g_fin_set.load() &&
             g_clean_run.load() == g_clean_added.load() - g_clean_stopped.load() &&
             g_items_made.load() == g_items_destroyed.load();
    };
    for (int i = 0; i < 200 && !drained(); i++) {
      gort::GC();
      gort::sleep_for(10ms);
    }
    int ng = gort::NumGoroutine();
    for (int i = 0; i < 500 && ng != 1; i++) {
      gort::sleep_for(10ms);
      ng = gort::NumGoroutine();
    }
    heartbeat("checking");
    int64_t sent = g_work_sent.load() + g_direct_sent.load();
    if (sent != g_received.load()) FAIL("messages: %lld sent, %lld received", (long long)sent, (long long)g_received.load());
    map_verify("final");
    {
      std::lock_guard<gort::Mutex> lk(shared.mu);
      if (shared.ops != g_map_ops_atomic.load())
        FAIL("Mutex: %lld updates counted under the lock, %lld done", (long long)shared.ops, (long long)g_map_ops_atomic.load());
    }
    // A word left on a stack may keep an object or two: allow a handful.
    int64_t fin_pending = g_fin_set.load() - g_fin_run.load();
    int64_t clean_pending = g_clean_added.load() - g_clean_stopped.load() - g_clean_run.load();
    int64_t items_live = g_items_made.load() - g_items_destroyed.load();
    if (fin_pending > 8) FAIL("%lld finalizers never ran", (long long)fin_pending);
    if (clean_pending > 8) FAIL("%lld cleanups never ran", (long long)clean_pending);
    if (items_live > 8) FAIL("%lld dropped Items were never destroyed", (long long)items_live);
    if (ng != 1) FAIL("%d goroutines left after the run (want 1: main)", ng);

    gort::MemStats ms;
    gort::ReadMemStats(&ms);
    std::printf(
        "soak-final goroutines=%d heap_objects=%llu fin_set=%lld fin_run=%lld fin_pending=%lld cleanups_added=%lld "
        "cleanups_stopped=%lld cleanups_run=%lld cleanup_pending=%lld resurrected=%lld items_made=%lld items_live=%lld "
        "weak_live_checks=%lld weak_cleared=%lld msgs_sent=%lld msgs_direct=%lld direct_timeouts=%lld msgs_received=%lld "
        "consumer_idle=%lld pingpongs=%lld spawned=%lld timers=%lld threads=%lld thread_exchanges=%lld map_ops=%lld "
        "exceptions=%lld procs_changes=%lld churn=%lld num_gc=%u checks_failed=%lld\n",
        ng, (unsigned long long)ms.HeapObjects, (long long)g_fin_set.load(), (long long)g_fin_run.load(),
        (long long)fin_pending, (long long)g_clean_added.load(), (long long)g_clean_stopped.load(),
        (long long)g_clean_run.load(), (long long)clean_pending, (long long)g_resurrected.load(),
        (long long)g_items_made.load(), (long long)items_live, (long long)g_weak_live_checks.load(),
        (long long)g_weak_cleared.load(), (long long)sent, (long long)g_direct_sent.load(),
        (long long)g_direct_timeouts.load(), (long long)g_received.load(), (long long)g_consumer_idle.load(),
        (long long)g_pingpongs.load(), (long long)g_spawned.load(), (long long)g_timers_fired.load(),
        (long long)g_threads_started.load(), (long long)g_thread_exchanges.load(), (long long)g_map_ops_atomic.load(),
        (long long)g_exceptions.load(), (long long)g_procs_changes.load(), (long long)g_churn_iters.load(), ms.NumGC,
        (long long)g_checks_failed.load());

    // Growth after the warm-up, against the first sample at or after its end.
    size_t b = 0;
    while (b + 1 < samples.size() && samples[b].target < warmup_end - 1e-9) b++;
    double rss_g = 0, obj_g = 0, gor_g = 0;
    for (size_t i = b; i < samples.size(); i++) {
      rss_g = std::max(rss_g, pct(samples[i].rss, samples[b].rss));
      obj_g = std::max(obj_g, pct(static_cast<double>(samples[i].heap_objects), static_cast<double>(samples[b].heap_objects)));
      gor_g = std::max(gor_g, pct(samples[i].goroutines, samples[b].goroutines));
    }
    int64_t failed = g_checks_failed.load();
    bool pass = !samples.empty() && rss_g <= 5.0 && obj_g <= 5.0 && gor_g <= 5.0 && failed == 0;
    std::printf(
        "soak-summary warmup_end_s=%g baseline_t=%.1f samples=%zu rss_growth_pct=%.2f heap_objects_growth_pct=%.2f "
        "goroutines_growth_pct=%.2f checks_failed=%lld result=%s\n",
        warmup_end, samples.empty() ? 0.0 : samples[b].t, samples.size() - b, rss_g, obj_g, gor_g, (long long)failed,
        pass ? "PASS" : "FAIL");
    std::printf("%s\n", pass ? "PASS" : "FAIL");
    std::fflush(stdout);
    exit_code = pass ? 0 : 1;

    g_map = nullptr;
    heartbeat("exiting");
  }
  g_done = true;
  dog.join();
  return exit_code;
}
