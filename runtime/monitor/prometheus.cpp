// PrometheusText: the metrics of client_golang 1.14's Go collector (prometheus/go_collector.go,
// collectors.NewGoCollector() with its default options), computed from one ReadMemStats and one
// ReadGCStats as that collector computes them, written in text exposition format 0.0.4 as
// expfmt.MetricFamilyToText writes it: families sorted by name, each with its HELP and TYPE
// lines, sample values in Go's shortest 'g' format.
#include <gort/goroutine.hpp>
#include <gort/memstats.hpp>
#include <gort/monitor.hpp>

#include <chrono>
#include <cstdint>

#include "runtime/core/thread.hpp"
#include "runtime/monitor/goformat.hpp"

namespace gort::monitor {

namespace {

using internal::append_go_float;

void family(std::string& out, const char* name, const char* help, const char* type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, double v, const char* labels = "") {
  out += name;
  out += labels;
  out += ' ';
  append_go_float(out, v);
  out += '\n';
}

void metric(std::string& out, const char* name, const char* help, const char* type, double v) {
  family(out, name, help, type);
  sample(out, name, v);
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// go_gc_duration_seconds: the collector's summary of the pause ring (Go's PauseQuantiles of 5:
// minimum, quartiles, maximum), its sum the total pause time and its count NumGC.
void gc_duration(std::string& out) {
  debug::GCStats gs;
  gs.PauseQuantiles.resize(5);
  debug::ReadGCStats(&gs);
  const char* name = "go_gc_duration_seconds";
  family(out, name, "A summary of the pause duration of garbage collection cycles.", "summary");
  static const char* const kQuantiles[] = {"{quantile=\"0\"}", "{quantile=\"0.25\"}", "{quantile=\"0.5\"}",
                                           "{quantile=\"0.75\"}", "{quantile=\"1\"}"};
  for (int i = 0; i < 5; ++i) sample(out, name, seconds(gs.PauseQuantiles[static_cast<size_t>(i)]), kQuantiles[i]);
  sample(out, "go_gc_duration_seconds_sum", seconds(gs.PauseTotal));
  sample(out, "go_gc_duration_seconds_count", static_cast<double>(gs.NumGC));
}

}  // namespace

std::string PrometheusText() {
  MemStats ms;
  ReadMemStats(&ms);
  std::string out;
  out.reserve(6 * 1024);
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  gc_duration(out);
  metric(out, "go_goroutines", "Number of goroutines that currently exist.", "gauge", NumGoroutine());
  family(out, "go_info", "Information about the Go environment.", "gauge");
  sample(out, "go_info", 1, "{version=\"gort" GORT_VERSION "\"}");
  const char* g = "gauge";
  const char* c = "counter";
  metric(out, "go_memstats_alloc_bytes", "Number of bytes allocated and still in use.", g, d(ms.Alloc));
  metric(out, "go_memstats_alloc_bytes_total", "Total number of bytes allocated, even if freed.", c, d(ms.TotalAlloc));
  metric(out, "go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", g, d(ms.BuckHashSys));
  metric(out, "go_memstats_frees_total", "Total number of frees.", c, d(ms.Frees));
  metric(out, "go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", g, d(ms.GCSys));
  metric(out, "go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and still in use.", g, d(ms.HeapAlloc));
  metric(out, "go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", g, d(ms.HeapIdle));
  metric(out, "go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", g, d(ms.HeapInuse));
  metric(out, "go_memstats_heap_objects", "Number of allocated objects.", g, d(ms.HeapObjects));
  metric(out, "go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", g, d(ms.HeapReleased));
  metric(out, "go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system.", g, d(ms.HeapSys));
  metric(out, "go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", g,
         d(ms.LastGC) / 1e9);
  metric(out, "go_memstats_lookups_total", "Total number of pointer lookups.", c, d(ms.Lookups));
  metric(out, "go_memstats_mallocs_total", "Total number of mallocs.", c, d(ms.Mallocs));
  metric(out, "go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures.", g, d(ms.MCacheInuse));
  metric(out, "go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", g,
         d(ms.MCacheSys));
  metric(out, "go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures.", g, d(ms.MSpanInuse));
  metric(out, "go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", g,
         d(ms.MSpanSys));
  metric(out, "go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", g,
         d(ms.NextGC));
  metric(out, "go_memstats_other_sys_bytes", "Number of bytes used for other system allocations.", g, d(ms.OtherSys));
  metric(out, "go_memstats_stack_inuse_bytes", "Number of bytes in use by the stack allocator.", g, d(ms.StackInuse));
  metric(out, "go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", g,
         d(ms.StackSys));
  metric(out, "go_memstats_sys_bytes", "Number of bytes obtained from system.", g, d(ms.Sys));
  metric(out, "go_threads", "Number of OS threads created.", g, internal::attached_thread_count());
  return out;
}

}  // namespace gort::monitor
