// GODEBUG=gctrace=1: Go 1.19's number formatting and line format, in process and end to end.
#include <doctest/doctest.h>
#include <gort/gort.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/gc/mgc.hpp"
#include "runtime/gc/pacer.hpp"
#include "runtime/stats/gctrace.hpp"
#include "test_util.hpp"

namespace gi = gort::internal;
using gi::fmt_ns_as_ms;

namespace {
// The line Go 1.19's gcMarkTermination prints (docs/gctrace.md).
const std::regex kLine(
    R"(^gc (\d+) @(\d+\.\d{3})s (\d+)%: [\d.]+\+[\d.]+\+[\d.]+ ms clock, [\d.]+\+[\d.]+/[\d.]+/[\d.]+\+[\d.]+ ms cpu, )"
    R"((\d+)->(\d+)->(\d+) MB, (\d+) MB goal, \d+ MB stacks, \d+ MB globals, (\d+) P( \(forced\))?$)");

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("gctrace: durations are printed as Go's fmtNSAsMS prints them") {
  // Below 10 ms: two significant digits, at most three decimals, truncated.
  CHECK(fmt_ns_as_ms(0) == "0");
  CHECK(fmt_ns_as_ms(999) == "0");  // under 1 us
  CHECK(fmt_ns_as_ms(1'000) == "0.001");
  CHECK(fmt_ns_as_ms(2'000) == "0.002");
  CHECK(fmt_ns_as_ms(5'000) == "0.005");
  CHECK(fmt_ns_as_ms(5'999) == "0.005");
  CHECK(fmt_ns_as_ms(31'700) == "0.031");
  CHECK(fmt_ns_as_ms(99'999) == "0.099");
  CHECK(fmt_ns_as_ms(100'000) == "0.10");
  CHECK(fmt_ns_as_ms(105'000) == "0.10");
  CHECK(fmt_ns_as_ms(123'456) == "0.12");
  CHECK(fmt_ns_as_ms(999'999) == "0.99");
  CHECK(fmt_ns_as_ms(1'000'000) == "1.0");
  CHECK(fmt_ns_as_ms(1'050'000) == "1.0");
  CHECK(fmt_ns_as_ms(4'123'456) == "4.1");
  CHECK(fmt_ns_as_ms(9'999'999) == "9.9");
  // From 10 ms: whole milliseconds, truncated.
  CHECK(fmt_ns_as_ms(10'000'000) == "10");
  CHECK(fmt_ns_as_ms(12'345'678) == "12");
  CHECK(fmt_ns_as_ms(999'999'999) == "999");
  CHECK(fmt_ns_as_ms(1'234'567'890'123) == "1234567");
}

TEST_CASE("gctrace: a whole line in Go 1.19's format") {
  gi::GcTrace t;
  const uint64_t start = 5'000'000'000;  // monotonic ns when the runtime started
  t.numgc = 7;
  t.t_start = start + 1'234'567'890;  // @1.234s: milliseconds, truncated
  t.t_mark = t.t_start + 21'000;      // 0.021 ms sweep termination
  t.t_mark_term = t.t_mark + 3'200'000;  // 3.2 ms mark
  t.t_end = t.t_mark_term + 15'000;   // 0.015 ms mark termination
  t.mark_assist_cpu_ns = 450'000;
  t.mark_bg_cpu_ns = 6'100'000;
  t.mark_idle_cpu_ns = 1'300'000;
  t.heap0 = 7 * (1 << 20) + 500'000;
  t.heap1 = 7 * (1 << 20) + 900'000;
  t.heap2 = 4 * (1 << 20) + 1;
  t.goal = 9 * (1 << 20) + (1 << 19);
  t.stacks = 1 << 19;
  t.globals = 3 * (1 << 20);
  t.procs = 8;
  t.forced = true;
  t.gc_cpu_fraction = 0.057;
  std::string line = gi::format_gctrace(t, start);
  CHECK(line ==
        "gc 7 @1.234s 5%: 0.021+3.2+0.015 ms clock, 0.16+0.45/6.1/1.3+0.12 ms cpu, 7->7->4 MB, 9 MB goal, "
        "0 MB stacks, 3 MB globals, 8 P (forced)");
  CHECK(std::regex_match(line, kLine));

  t.forced = false;
  t.numgc = 1;
  t.t_start = start + 4'999'999;  // @0.004s
  t.t_mark = t.t_start + 2'000;
  t.t_mark_term = t.t_mark + 12'345'678;
  t.t_end = t.t_mark_term + 999;
  t.mark_assist_cpu_ns = t.mark_bg_cpu_ns = t.mark_idle_cpu_ns = 0;
  t.gc_cpu_fraction = 0.999;
  t.procs = 2;
  line = gi::format_gctrace(t, start);
  CHECK(line ==
        "gc 1 @0.004s 99%: 0.002+12+0 ms clock, 0.004+0/0/0+0.001 ms cpu, 7->7->4 MB, 9 MB goal, "
        "0 MB stacks, 3 MB globals, 2 P");
  CHECK(std::regex_match(line, kLine));
}

TEST_CASE("gctrace: the line printed for a collection agrees with MemStats") {
  // Capture this process's stderr while one forced collection runs with gctrace on.
  char path[] = "/tmp/gort-gctrace-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  bool was_on = gi::gctrace_enabled();
  REQUIRE(gort_test::quiesce());  // no finalizer or destructor left to allocate meanwhile
  uint64_t goal_before = gort_test::read_stats().NextGC;
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  gi::set_gctrace(1);
  gort::GC();
  gi::set_gctrace(was_on ? 1 : 0);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  gort::MemStats m = gort_test::read_stats();
  uint64_t marked = gi::last_cycle().marked;
  std::string text = read_file(path);
  unlink(path);

  std::vector<std::string> lines = lines_of(text);
  REQUIRE(lines.size() == 1);
  std::smatch g;
  REQUIRE(std::regex_match(lines[0], g, kLine));
  CHECK(std::stoul(g[1]) == m.NumGC);
  CHECK(g[9].matched);  // " (forced)"
  CHECK(std::stoul(g[6]) == marked >> 20);
  CHECK(std::stoull(g[7]) == goal_before >> 20);  // the goal the cycle worked toward
  CHECK(std::stoi(g[8]) == gi::gc_procs());
  CHECK(std::stoi(g[3]) <= 100);
}

namespace {
std::string sample_path() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "";
  std::string p(exe, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/')) + "/../samples/memstats";
}

struct Run {
  int status = -1;
  std::string err, out;
};

// Runs build/samples/memstats with the given environment prefix; stderr and stdout separately.
Run run_sample(const std::string& env) {
  Run r;
  char path[] = "/tmp/gort-sample-out-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return r;
  close(fd);
  std::string cmd = env + " '" + sample_path() + "' 2>&1 >'" + path + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.err.append(buf, n);
  r.status = pclose(p);
  r.out = read_file(path);
  unlink(path);
  return r;
}

uint64_t field(const std::string& out, const std::string& name) {
  std::smatch m;
  std::regex re("(^|\n)" + name + ":(\\d+)");
  if (!std::regex_search(out, m, re)) return ~uint64_t{0};
  return std::stoull(m[2]);
}
}  // namespace

TEST_CASE("gctrace: GODEBUG=gctrace=1 end to end (samples/memstats)") {
  REQUIRE(access(sample_path().c_str(), X_OK) == 0);
  Run r = run_sample("env GODEBUG=gctrace=1");
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);  // the sample's own identity checks passed
  std::vector<std::string> lines = lines_of(r.err);
  REQUIRE(!lines.empty());
  uint64_t forced = 0;
  unsigned expect = 1;
  double prev_at = 0;
  for (const std::string& l : lines) {
    CAPTURE(l);
    std::smatch g;
    REQUIRE(std::regex_match(l, g, kLine));  // every stderr line is a trace line
    CHECK(std::stoul(g[1]) == expect);       // numbered 1, 2, 3, ...
    ++expect;
    double at = std::stod(g[2]);
    CHECK(at >= prev_at);
    prev_at = at;
    CHECK(std::stoi(g[3]) <= 100);
    if (g[9].matched) ++forced;
  }
  // One line per cycle: the counts agree with the MemStats the sample printed at the end.
  uint64_t numgc = field(r.out, "NumGC");
  uint64_t numforced = field(r.out, "NumForcedGC");
  CHECK(lines.size() == numgc);
  CHECK(forced == numforced);
  CHECK(numforced >= 2);  // the sample forces two collections

  // Several GODEBUG settings at once.
  Run multi = run_sample("env GODEBUG=madvdontneed=1,gctrace=1");
  CHECK(WEXITSTATUS(multi.status) == 0);
  CHECK(lines_of(multi.err).size() == field(multi.out, "NumGC"));
}

TEST_CASE("gctrace: nothing is printed without gctrace=1") {
  REQUIRE(access(sample_path().c_str(), X_OK) == 0);
  Run off = run_sample("env -u GODEBUG");
  CHECK(WEXITSTATUS(off.status) == 0);
  CHECK(off.err.empty());
  Run zero = run_sample("env GODEBUG=gctrace=0");
  CHECK(WEXITSTATUS(zero.status) == 0);
  CHECK(zero.err.empty());
}

TEST_CASE("environment end to end: GOGC, GOMEMLIMIT and GOMAXPROCS as Go reads them (samples/memstats)") {
  REQUIRE(access(sample_path().c_str(), X_OK) == 0);
  SUBCASE("a malformed GOGC is ignored with a warning") {
    Run r = run_sample("env GOGC=lots");
    CHECK(WIFEXITED(r.status));
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(r.err.find("ignoring malformed GOGC=\"lots\"") != std::string::npos);
  }
  SUBCASE("GOGC=off: only the forced collections run") {
    Run r = run_sample("env GOGC=off");
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(field(r.out, "NumGC") == field(r.out, "NumForcedGC"));
    CHECK(field(r.out, "NextGC") > (uint64_t{1} << 62));
  }
  SUBCASE("a malformed GOMEMLIMIT stops the program with a clear error, as Go's does") {
    Run r = run_sample("env GOMEMLIMIT=10MB");
    CHECK(!(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0));
    CHECK(r.err.find("malformed GOMEMLIMIT=\"10MB\"") != std::string::npos);
  }
  SUBCASE("GOMEMLIMIT caps the heap goal") {
    Run r = run_sample("env GOGC=off GOMEMLIMIT=64MiB");
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(field(r.out, "NextGC") < (uint64_t{64} << 20));
  }
  SUBCASE("GOMAXPROCS sets the P count of the trace") {
    Run r = run_sample("env GOMAXPROCS=1 GODEBUG=gctrace=1");
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(r.err.find(" 1 P") != std::string::npos);
    CHECK(r.err.find(" 2 P") == std::string::npos);
  }
}

// Runs samples/goroutines with args; its exit status and everything it printed.
static Run run_goroutines_sample(const std::string& args) {
  Run r;
  std::string exe = sample_path();
  exe = exe.substr(0, exe.rfind('/')) + "/goroutines";
  if (access(exe.c_str(), X_OK) != 0) return r;
  FILE* p = popen(("'" + exe + "' " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  return r;
}

TEST_CASE("gort::run end to end: the main goroutine's result is the exit status (samples/goroutines)") {
  Run r = run_goroutines_sample("20000");
  CAPTURE(r.out);
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  CHECK(r.out.find("(ok), 3 ticks") != std::string::npos);
  CHECK(r.out.find("StackInuse=") != std::string::npos);
}

TEST_CASE("goroutine stack overflow stops the program with a clear message (samples/goroutines --overflow)") {
  Run r = run_goroutines_sample("--overflow");
  CAPTURE(r.out);
  CHECK(r.status != -1);  // it ran
  CHECK(!(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0));
  CHECK(r.out.find("gort: fatal error: goroutine stack overflow") != std::string::npos);
}
