// The heap profiler (stats/mprof.hpp) and pprof::WriteHeapProfile (monitor/heapprofile.cpp):
// sampling, the cycle in which samples are published, frees, scaling, stacks that cross stack
// segments, and the profile.proto that comes out (read back here with a small protobuf reader;
// `go tool pprof` reads it in tests/monitor/check_exporters.sh).
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/alloc/mcache.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/sched/proc.hpp"
#include "runtime/sched/stack.hpp"
#include "runtime/stats/mprof.hpp"
#include "test_util.hpp"

namespace {

std::string gunzip(const std::string& gz) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out;
  char buf[65536];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
    out.append(buf, sizeof buf - z.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

// A protobuf message's fields: number -> raw values (varints as numbers, others as bytes).
struct Fields {
  std::multimap<int, uint64_t> ints;
  std::multimap<int, std::string> bytes;
};

uint64_t read_varint(const std::string& s, size_t& i) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(i < s.size());
    auto b = static_cast<unsigned char>(s[i++]);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
}

Fields parse(const std::string& s) {
  Fields f;
  for (size_t i = 0; i < s.size();) {
    uint64_t key = read_varint(s, i);
    int field = static_cast<int>(key >> 3);
    switch (key & 7) {
      case 0: f.ints.emplace(field, read_varint(s, i)); break;
      case 2: {
        uint64_t n = read_varint(s, i);
        REQUIRE(i + n <= s.size());
        f.bytes.emplace(field, s.substr(i, n));
        i += n;
        break;
      }
      default: FAIL("unexpected wire type " << (key & 7));
    }
  }
  return f;
}

std::vector<uint64_t> packed(const std::string& s) {
  std::vector<uint64_t> v;
  for (size_t i = 0; i < s.size();) v.push_back(read_varint(s, i));
  return v;
}

uint64_t one(const Fields& f, int field) {
  auto it = f.ints.find(field);
  return it == f.ints.end() ? 0 : it->second;
}

// What a test needs of a profile: per sample, the function names of its stack (innermost
// first, inlined frames included) and its four values.
struct Sample {
  std::vector<std::string> functions;
  std::vector<int64_t> values;
  int64_t bytes = 0;
};
struct Profile {
  std::vector<std::string> sample_types;
  int64_t period = 0;
  std::vector<Sample> samples;
};

Profile read_profile(const std::string& gz) {
  Fields p = parse(gunzip(gz));
  std::vector<std::string> strings;
  for (auto [k, v] : p.bytes)
    if (k == 6) strings.push_back(v);
  REQUIRE_FALSE(strings.empty());
  CHECK(strings[0].empty());
  std::map<uint64_t, std::string> functions;
  for (auto [k, v] : p.bytes)
    if (k == 5) {
      Fields f = parse(v);
      functions[one(f, 1)] = strings.at(one(f, 2));
    }
  std::map<uint64_t, std::vector<std::string>> locations;
  for (auto [k, v] : p.bytes)
    if (k == 4) {
      Fields l = parse(v);
      std::vector<std::string>& names = locations[one(l, 1)];
      for (auto it = l.bytes.lower_bound(4); it != l.bytes.upper_bound(4); ++it)
        names.push_back(functions.at(one(parse(it->second), 1)));
    }
  Profile out;
  for (auto [k, v] : p.bytes)
    if (k == 1) {
      Fields t = parse(v);
      out.sample_types.push_back(strings.at(one(t, 1)) + "/" + strings.at(one(t, 2)));
    }
  out.period = static_cast<int64_t>(one(p, 12));
  for (auto [k, v] : p.bytes)
    if (k == 2) {
      Fields s = parse(v);
      Sample x;
      auto locs = s.bytes.find(1);
      if (locs != s.bytes.end())
        for (uint64_t id : packed(locs->second))
          for (const std::string& n : locations.at(id)) x.functions.push_back(n);
      for (uint64_t v : packed(s.bytes.find(2)->second)) x.values.push_back(static_cast<int64_t>(v));
      for (auto it = s.bytes.lower_bound(3); it != s.bytes.upper_bound(3); ++it) {
        Fields l = parse(it->second);
        if (strings.at(one(l, 1)) == "bytes") x.bytes = static_cast<int64_t>(one(l, 3));
      }
      out.samples.push_back(std::move(x));
    }
  return out;
}

Profile current_profile() {
  std::ostringstream out;
  gort::pprof::WriteHeapProfile(out);
  REQUIRE(out.good());
  return read_profile(out.str());
}

// Sets MemProfileRate for the test and makes the calling thread's next sampling distance
// follow it at once (a rate change otherwise takes effect at the thread's next sample).
struct ProfileRate {
  int old = gort::MemProfileRate;
  explicit ProfileRate(int rate) {
    gort::MemProfileRate = rate;
    gort::internal::t_front.cache->next_sample = gort::internal::next_sample_distance();
  }
  ~ProfileRate() {
    gort::MemProfileRate = old;
    gort::internal::t_front.cache->next_sample = gort::internal::next_sample_distance();
  }
};

struct Profiled {
  char payload[200];  // the 208-byte size class
};
struct ProfiledSmall {
  uint64_t a, b, c, d, e, f, g, h;  // 64 bytes
};

// The functions whose allocations the tests look for in the profile.
__attribute__((noinline)) Profiled* allocate_profiled_a() { return gort::make<Profiled>(); }
__attribute__((noinline)) ProfiledSmall* allocate_profiled_b() { return gort::make<ProfiledSmall>(); }

// The samples whose innermost frame names `fn`.
std::vector<Sample> samples_of(const Profile& p, const char* fn) {
  std::vector<Sample> out;
  for (const Sample& s : p.samples)
    if (!s.functions.empty() && s.functions[0].find(fn) != std::string::npos) out.push_back(s);
  return out;
}

}  // namespace

TEST_CASE("mprof: every allocation sampled at rate 1; published after the next cycle; frees counted") {
  gort_test::clean_gc();
  constexpr int kN = 1000;
  gort::Root<gort::Array<gort::Ref<Profiled>>> kept(gort::make_array<gort::Ref<Profiled>>(kN / 2));
  // The writer scales by the rate in force when it writes (as Go's does): it stays 1 throughout.
  ProfileRate rate(1);
  // Something published already (a profile with nothing published shows every pending sample,
  // as Go's MemProfile does before the first collection).
  gort::KeepAlive(allocate_profiled_b());
  gort_test::clean_gc();
  for (int i = 0; i < kN; ++i) {
    Profiled* p = allocate_profiled_a();
    if (i % 2 == 0) (*kept)[static_cast<size_t>(i / 2)] = p;
  }
  // Before the cycle: nothing of these is published (Go shows the heap as of the last mark).
  Profile before = current_profile();
  CHECK(samples_of(before, "allocate_profiled_a").empty());
  CHECK(before.sample_types ==
        std::vector<std::string>{"alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"});

  gort_test::clean_gc();  // publishes the allocations and the frees of the 500 dropped objects
  Profile after = current_profile();
  auto mine = samples_of(after, "allocate_profiled_a");
  if (mine.size() != 1)
    for (const Sample& x : after.samples) {
      std::string st;
      for (const std::string& f : x.functions) st += f + " | ";
      MESSAGE(st);
    }
  REQUIRE(mine.size() == 1);  // one call site, one size: one bucket
  CHECK(mine[0].values == std::vector<int64_t>{kN, kN * 208, kN / 2, kN / 2 * 208});
  CHECK(mine[0].bytes == 208);
  CHECK(after.period == 1);
  // The stack goes on past the allocating function, into this test.
  REQUIRE(mine[0].functions.size() >= 2);
  CHECK(mine[0].functions[1].find("DOCTEST_ANON_FUNC") != std::string::npos);
  // Nothing of gort's allocation path is at the top of any stack (a goroutine's closure may be:
  // the lambda that allocated is inlined there).
  for (const Sample& s : after.samples) {
    REQUIRE_FALSE(s.functions.empty());
    const std::string& top = s.functions[0];
    CHECK_MESSAGE((top.rfind("gort::", 0) != 0 || top.rfind("gort::internal::GoClosure", 0) == 0), top);
  }

  kept = nullptr;
  gort_test::clean_gc();
  auto freed = samples_of(current_profile(), "allocate_profiled_a");
  REQUIRE(freed.size() == 1);
  CHECK(freed[0].values == std::vector<int64_t>{kN, kN * 208, 0, 0});  // cumulative counts stay
}

TEST_CASE("mprof: Poisson sampling over bytes, scaled back to an estimate of every allocation") {
  gort_test::clean_gc();
  constexpr int kN = 200000;  // 12.8 MB of 64-byte objects
  ProfileRate rate(8192);      // about 1560 samples expected
  for (int i = 0; i < kN; ++i) gort::KeepAlive(allocate_profiled_b());
  gort_test::clean_gc();
  Profile p = current_profile();
  CHECK(p.period == 8192);
  int64_t objects = 0, bytes = 0;
  for (const Sample& s : samples_of(p, "allocate_profiled_b")) {
    objects += s.values[0];
    bytes += s.values[1];
    CHECK(s.values[2] == 0);  // all garbage by now
  }
  // The estimate is within 10% (the sample count's standard deviation is 2.5%).
  CHECK(objects == doctest::Approx(kN).epsilon(0.10));
  CHECK(bytes == doctest::Approx(kN * 64.0).epsilon(0.10));
}

namespace {
// Recursion with 3 KiB frames: on segmented stacks (8 KiB to start) it crosses a segment every
// few levels, so the unwinder must follow libgcc's __morestack frames to reach the caller.
__attribute__((noinline)) Profiled* allocate_deep(int depth) {
  volatile char frame[3072];
  frame[0] = static_cast<char>(depth);
  Profiled* p = depth == 0 ? allocate_profiled_a() : allocate_deep(depth - 1);
  frame[1] = frame[0];
  return p;
}

// A managed array of n bytes, allocated `depth` calls down (a distinct stack per depth).
__attribute__((noinline)) void* allocate_nested(int depth, size_t n) {
  void* p = depth == 0 ? static_cast<void*>(gort::make_array<char>(n)) : allocate_nested(depth - 1, n);
  asm volatile("" : : "r"(p) : "memory");  // not a tail call: each level stays on the stack
  return p;
}
}  // namespace

TEST_CASE("mprof: a goroutine's sampled stack crosses its stack segments") {
  gort_test::clean_gc();
  constexpr int kDepth = 8;
  {
    ProfileRate rate(1);
    gort::WaitGroup wg;
    wg.Add(1);
    gort::go([&] {
      // The goroutine's thread has its own cache: make its next distance follow the rate.
      gort::internal::t_front.cache->next_sample = 0;
      gort::KeepAlive(allocate_deep(kDepth));
      wg.Done();
    });
    wg.Wait();
  }
  gort_test::clean_gc();
  Profile p = current_profile();
  bool found = false;
  for (const Sample& s : samples_of(p, "allocate_profiled_a")) {
    int levels = 0;
    for (const std::string& f : s.functions) {
      levels += f.find("allocate_deep") != std::string::npos;
      CHECK(f.find("__morestack") == std::string::npos);  // the segment switches are left out
    }
    if (levels == kDepth + 1) found = true;
  }
  CHECK(found);
}

TEST_CASE("mprof: no sampling at rate 0; BuckHashSys counts the table and the buckets") {
  gort_test::clean_gc();
  gort::MemStats before = gort_test::read_stats();
  {
    ProfileRate rate(0);
    for (int i = 0; i < 100000; ++i) gort::KeepAlive(allocate_profiled_a());
  }
  gort_test::clean_gc();
  gort::MemStats after = gort_test::read_stats();
  CHECK(after.BuckHashSys == before.BuckHashSys);  // no new bucket
  CHECK(after.BuckHashSys >= gort::internal::kBuckHashSize * sizeof(void*));
  {
    // A bucket per call stack and size: 30 depths of recursion times the 29 size classes up to
    // 800 bytes make 870 buckets, about 300 KiB: more than the metadata chunk in use has left.
    ProfileRate rate(1);
    for (int depth = 1; depth <= 30; ++depth)
      for (size_t n = 16; n <= 50 * 16; n += 16) gort::KeepAlive(allocate_nested(depth, n));
  }
  CHECK(gort_test::read_stats().BuckHashSys > before.BuckHashSys);
}

namespace {
__attribute__((noinline)) void* allocate_in_goroutine() {
  void* p = gort::make_array<char>(3000);
  asm volatile("" : : "r"(p) : "memory");  // not a tail call: this frame must be in the sample
  return p;
}
}  // namespace

TEST_CASE("mprof: a sampled goroutine does not grow a 1 MiB stack segment for the unwinder") {
  // libgcc's unwinder is built without split-stack: called on a goroutine's stack it would make
  // libgcc give that goroutine a 1 MiB segment (StackInuse). It runs on the M's stack instead.
  gort_test::clean_gc();
  ProfileRate rate(1);
  constexpr int kG = 40;
  gort::MemStats before = gort_test::read_stats();
  gort::WaitGroup started, release;
  release.Add(1);
  for (int i = 0; i < kG; ++i) {
    started.Add(1);
    gort::go([&] {
      gort::internal::t_front.cache->next_sample = 0;  // this M samples its next allocation
      gort::KeepAlive(allocate_in_goroutine());
      started.Done();
      release.Wait();  // parked: its stack segments stay counted
    });
  }
  started.Wait();
  gort::MemStats during = gort_test::read_stats();
  release.Done();
  gort_test::clean_gc();
  Profile p = current_profile();
  bool found = !samples_of(p, "allocate_in_goroutine").empty();
  if (!found)
    for (const Sample& x : p.samples) {
      std::string st;
      for (const std::string& f : x.functions) st += f + " | ";
      MESSAGE(st);
    }
  CHECK(found);
  // 8 KiB first stacks (64 KiB with fixed stacks, 256 KiB in sanitizer builds) and what they
  // grew: far below 1 MiB each.
  CHECK(during.StackInuse - before.StackInuse < uint64_t{kG} * std::max<uint64_t>(256 << 10, 2 * gort::internal::kStackSize));
}

namespace {
// Different bodies: identical functions would be folded into one (gcc's -fipa-icf).
std::atomic<int> g_parked_in{0};  // written by many goroutines at once
__attribute__((noinline)) void park_in_profile_a(gort::Chan<int>& ch) {
  g_parked_in.store(1, std::memory_order_relaxed);
  ch.recv();
}
__attribute__((noinline)) void park_in_profile_b(gort::Chan<int>& ch) {
  g_parked_in.store(2, std::memory_order_relaxed);
  ch.recv();
}

int64_t goroutines_in(const Profile& p, const char* fn) {
  int64_t n = 0;
  for (const Sample& s : samples_of(p, fn)) n += s.values.at(0);
  return n;
}
}  // namespace

TEST_CASE("pprof: the goroutine profile counts goroutines by stack, from the program's frames") {
  constexpr int kA = 25, kB = 10;
  gort::Chan<int> ch;
  gort::WaitGroup done;
  for (int i = 0; i < kA + kB; ++i) {
    done.Add(1);
    gort::go([&ch, &done, i] {
      if (i < kA) park_in_profile_a(ch);
      else park_in_profile_b(ch);
      done.Done();
    });
  }
  Profile p;
  for (int tries = 0; tries < 400; ++tries) {  // until every one has parked in its receive
    std::ostringstream out;
    gort::pprof::WriteGoroutineProfile(out);
    REQUIRE(out.good());
    p = read_profile(out.str());
    if (goroutines_in(p, "park_in_profile_a") == kA && goroutines_in(p, "park_in_profile_b") == kB) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(p.sample_types == std::vector<std::string>{"goroutine/count"});
  CHECK(p.period == 1);
  CHECK(goroutines_in(p, "park_in_profile_a") == kA);
  CHECK(goroutines_in(p, "park_in_profile_b") == kB);
  // One sample per distinct stack, each starting at the program's frame: gort's are left out,
  // but for a goroutine's closure (GoClosure<F>::call, where the program's function is inlined).
  CHECK(samples_of(p, "park_in_profile_a").size() == 1);
  for (const Sample& s : p.samples) {
    std::string gort_frame;
    for (const std::string& f : s.functions)
      if (f.rfind("gort::", 0) == 0 && f.rfind("gort::internal::GoClosure", 0) != 0) gort_frame = f;
    CHECK_MESSAGE(gort_frame.empty(), gort_frame);
  }
  int64_t total = 0;
  for (const Sample& s : p.samples) total += s.values.at(0);
  CHECK(total >= kA + kB);
  CHECK(total <= gort::NumGoroutine());
  for (int i = 0; i < kA + kB; ++i) ch.send(i);
  done.Wait();
}

namespace {
__attribute__((noinline)) void spin_in_profile_test(std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) asm volatile("" ::: "memory");
}
}  // namespace

// Not under ThreadSanitizer: there a thread stops from its own frame when TSan lets the stop
// signal through, not where the signal found it (core/thread.cpp), so a running goroutine's
// registers are not known and its stack is not walked.
TEST_CASE("pprof: a goroutine running on another thread is walked from where it runs (dump and profile)" *
          doctest::skip(gort::internal::kThreadSanitizer)) {
  std::atomic<bool> stop{false}, started{false};
  gort::WaitGroup done;
  done.Add(1);
  gort::go([&] {
    started = true;
    spin_in_profile_test(stop);
    done.Done();
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::string dump;
  Profile p;
  for (int tries = 0; tries < 200; ++tries) {  // until the goroutine is seen inside the loop
    dump = gort::internal::goroutine_dump();
    std::ostringstream out;
    gort::pprof::WriteGoroutineProfile(out);
    p = read_profile(out.str());
    if (dump.find("spin_in_profile_test") != std::string::npos && !samples_of(p, "spin_in_profile_test").empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop = true;
  done.Wait();
  INFO(dump);
  size_t at = dump.find("spin_in_profile_test");
  REQUIRE(at != std::string::npos);
  size_t header = dump.rfind("goroutine ", at);
  REQUIRE(header != std::string::npos);
  CHECK(dump.substr(header, dump.find('\n', header) - header).find("[running]") != std::string::npos);
  // The walk went on past the spinning function, into the test's lambda.
  CHECK(dump.find("DOCTEST_ANON_FUNC", at) != std::string::npos);
  CHECK(samples_of(p, "spin_in_profile_test").size() == 1);
  CHECK(goroutines_in(p, "spin_in_profile_test") == 1);
}
