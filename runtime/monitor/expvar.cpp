// ExpvarJSON: the document Go's expvar package serves at /debug/vars with its two built-in
// variables, written as expvarHandler writes it ("{\n", `"key": value` pairs sorted by key and
// separated by ",\n", then "\n}\n"), each value as encoding/json marshals it: "cmdline" is the
// program's arguments (os.Args: /proc/self/cmdline here), "memstats" one ReadMemStats with Go's
// field names in Go's field order.
#include <gort/memstats.hpp>
#include <gort/monitor.hpp>

#include <cstdint>
#include <fstream>
#include <iterator>

#include "runtime/monitor/goformat.hpp"

namespace gort::monitor {

namespace {

using internal::append_json_float;
using internal::append_json_string;

void cmdline(std::string& out) {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string args((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  out += '[';
  size_t start = 0;
  bool first = true;
  while (start < args.size()) {  // NUL-terminated arguments
    size_t end = args.find('\0', start);
    if (end == std::string::npos) end = args.size();
    if (!first) out += ',';
    first = false;
    append_json_string(out, std::string_view(args).substr(start, end - start));
    start = end + 1;
  }
  out += ']';
}

// Writes the members of a JSON object, commas between them.
struct Object {
  std::string& out;
  bool first = true;
  void key(const char* name) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out += name;
    out += "\":";
  }
  void u(const char* name, uint64_t v) {
    key(name);
    out += std::to_string(v);
  }
  template <size_t N>
  void array(const char* name, const uint64_t (&v)[N]) {
    key(name);
    out += '[';
    for (size_t i = 0; i < N; ++i) {
      if (i) out += ',';
      out += std::to_string(v[i]);
    }
    out += ']';
  }
};

void memstats(std::string& out) {
  MemStats ms;
  ReadMemStats(&ms);
  out += '{';
  Object o{out};
  o.u("Alloc", ms.Alloc);
  o.u("TotalAlloc", ms.TotalAlloc);
  o.u("Sys", ms.Sys);
  o.u("Lookups", ms.Lookups);
  o.u("Mallocs", ms.Mallocs);
  o.u("Frees", ms.Frees);
  o.u("HeapAlloc", ms.HeapAlloc);
  o.u("HeapSys", ms.HeapSys);
  o.u("HeapIdle", ms.HeapIdle);
  o.u("HeapInuse", ms.HeapInuse);
  o.u("HeapReleased", ms.HeapReleased);
  o.u("HeapObjects", ms.HeapObjects);
  o.u("StackInuse", ms.StackInuse);
  o.u("StackSys", ms.StackSys);
  o.u("MSpanInuse", ms.MSpanInuse);
  o.u("MSpanSys", ms.MSpanSys);
  o.u("MCacheInuse", ms.MCacheInuse);
  o.u("MCacheSys", ms.MCacheSys);
  o.u("BuckHashSys", ms.BuckHashSys);
  o.u("GCSys", ms.GCSys);
  o.u("OtherSys", ms.OtherSys);
  o.u("NextGC", ms.NextGC);
  o.u("LastGC", ms.LastGC);
  o.u("PauseTotalNs", ms.PauseTotalNs);
  o.array("PauseNs", ms.PauseNs);
  o.array("PauseEnd", ms.PauseEnd);
  o.u("NumGC", ms.NumGC);
  o.u("NumForcedGC", ms.NumForcedGC);
  o.key("GCCPUFraction");
  append_json_float(out, ms.GCCPUFraction);
  o.key("EnableGC");
  out += ms.EnableGC ? "true" : "false";
  o.key("DebugGC");
  out += ms.DebugGC ? "true" : "false";
  o.key("BySize");
  out += '[';
  for (size_t i = 0; i < std::size(ms.BySize); ++i) {
    if (i) out += ',';
    out += '{';
    Object c{out};
    c.u("Size", ms.BySize[i].Size);
    c.u("Mallocs", ms.BySize[i].Mallocs);
    c.u("Frees", ms.BySize[i].Frees);
    out += '}';
  }
  out += "]}";
}

}  // namespace

std::string ExpvarJSON() {
  std::string out;
  out.reserve(16 * 1024);
  out += "{\n\"cmdline\": ";
  cmdline(out);
  out += ",\n\"memstats\": ";
  memstats(out);
  out += "\n}\n";
  return out;
}

}  // namespace gort::monitor
