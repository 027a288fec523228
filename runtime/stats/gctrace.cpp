#include "runtime/stats/gctrace.hpp"

#include <cstdio>

#include "runtime/core/log.hpp"
#include "runtime/gc/mgc.hpp"
#include "runtime/stats/stats.hpp"

namespace gort::internal {

namespace {
int g_gctrace = 0;
uint64_t g_start_ns = 0;

// Go's itoaDiv: val / 10^dec with dec decimals.
std::string itoa_div(uint64_t val, int dec) {
  uint64_t scale = 1;
  for (int i = 0; i < dec; ++i) scale *= 10;
  char buf[48];
  if (dec == 0) snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(val));
  else snprintf(buf, sizeof buf, "%llu.%0*llu", static_cast<unsigned long long>(val / scale), dec,
                static_cast<unsigned long long>(val % scale));
  return buf;
}

}  // namespace

bool gctrace_enabled() { return g_gctrace > 0; }
void set_gctrace(int level) { g_gctrace = level; }
uint64_t runtime_start_ns() { return g_start_ns; }
void set_runtime_start_ns(uint64_t ns) { g_start_ns = ns; }

double gc_cpu_fraction(uint64_t now) {
  if (now <= g_start_ns) return 0;
  double avail = static_cast<double>(now - g_start_ns) * gc_procs();
  return static_cast<double>(stats().gc_cpu_ns.load(std::memory_order_relaxed)) / avail;
}

std::string fmt_ns_as_ms(uint64_t ns) {
  if (ns >= 10000000) return itoa_div(ns / 1000000, 0);
  uint64_t x = ns / 1000;
  if (x == 0) return "0";
  int dec = 3;
  while (x >= 100) {
    x /= 10;
    --dec;
  }
  return itoa_div(x, dec);
}

std::string format_gctrace(const GcTrace& t, uint64_t start_ns) {
  // Stop-the-world phases count as wall time x procs, as Go counts them.
  uint64_t procs = static_cast<uint64_t>(t.procs);
  std::string s = "gc " + std::to_string(t.numgc) + " @" + itoa_div((t.t_start - start_ns) / 1000000, 3) + "s " +
                  std::to_string(static_cast<int>(t.gc_cpu_fraction * 100)) + "%: ";
  s += fmt_ns_as_ms(t.t_mark - t.t_start) + "+" + fmt_ns_as_ms(t.t_mark_term - t.t_mark) + "+" +
       fmt_ns_as_ms(t.t_end - t.t_mark_term) + " ms clock, ";
  s += fmt_ns_as_ms((t.t_mark - t.t_start) * procs) + "+" + fmt_ns_as_ms(t.mark_assist_cpu_ns) + "/" +
       fmt_ns_as_ms(t.mark_bg_cpu_ns) + "/" + fmt_ns_as_ms(t.mark_idle_cpu_ns) + "+" +
       fmt_ns_as_ms((t.t_end - t.t_mark_term) * procs) + " ms cpu, ";
  s += std::to_string(t.heap0 >> 20) + "->" + std::to_string(t.heap1 >> 20) + "->" + std::to_string(t.heap2 >> 20) +
       " MB, " + std::to_string(t.goal >> 20) + " MB goal, " + std::to_string(t.stacks >> 20) + " MB stacks, " +
       std::to_string(t.globals >> 20) + " MB globals, " + std::to_string(t.procs) + " P";
  if (t.forced) s += " (forced)";
  return s;
}

void print_gctrace(const GcTrace& t) { runtime_log().info(format_gctrace(t, g_start_ns)); }

}  // namespace gort::internal
