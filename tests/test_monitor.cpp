// gort::monitor: Go's number and string formats, the Prometheus exposition, the expvar document
// and the HTTP server (read back with httplib's client and nlohmann's JSON parser). The real
// clients (curl, promtool, a Prometheus server, a Go program built with client_golang) are run
// by tests/monitor/check_exporters.sh.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "runtime/monitor/goformat.hpp"
#include "test_util.hpp"

namespace {

std::string go_float(double v) {
  std::string s;
  gort::internal::append_go_float(s, v);
  return s;
}
std::string json_float(double v) {
  std::string s;
  gort::internal::append_json_float(s, v);
  return s;
}
std::string json_string(std::string_view v) {
  std::string s;
  gort::internal::append_json_string(s, v);
  return s;
}

// The families of a text exposition: name -> TYPE, and every sample line's value by its full
// name with labels.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> help;
  std::map<std::string, double> samples;
  std::vector<std::string> order;  // family names as they appear
};

Exposition parse_exposition(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    REQUIRE_FALSE(line.empty());
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      e.types[rest.substr(0, sp)] = rest.substr(sp + 1);
      e.order.push_back(rest.substr(0, sp));
    } else if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      e.help[rest.substr(0, sp)] = rest.substr(sp + 1);
    } else {
      size_t sp = line.rfind(' ');
      REQUIRE(sp != std::string::npos);
      e.samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  }
  return e;
}

}  // namespace

TEST_CASE("monitor: sample values are formatted as Go's strconv 'g' (expfmt)") {
  // Expected strings: what Go 1.19's strconv.FormatFloat(v, 'g', -1, 64) prints.
  CHECK(go_float(0) == "0");
  CHECK(go_float(-0.0) == "0");
  CHECK(go_float(1) == "1");
  CHECK(go_float(96576) == "96576");
  CHECK(go_float(999999) == "999999");
  CHECK(go_float(1e6) == "1e+06");
  CHECK(go_float(4194304) == "4.194304e+06");
  CHECK(go_float(12696592) == "1.2696592e+07");
  CHECK(go_float(0.25) == "0.25");
  CHECK(go_float(0.0001) == "0.0001");
  CHECK(go_float(0.00001) == "1e-05");
  CHECK(go_float(1.5e-5) == "1.5e-05");
  CHECK(go_float(1.7334e9) == "1.7334e+09");
  CHECK(go_float(-2.5) == "-2.5");
  // Small integers after a long number (a formatter that reads past its digits would see the
  // long number's leftovers).
  CHECK(go_float(1.2345678901234567e+100) == "1.2345678901234567e+100");
  CHECK(go_float(55) == "55");
  CHECK(go_float(1.2345678901234567e+100) == "1.2345678901234567e+100");
  CHECK(go_float(7) == "7");
  CHECK(go_float(1e300 * 1e300) == "+Inf");
  CHECK(go_float(-1e300 * 1e300) == "-Inf");
  CHECK(go_float(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("monitor: JSON numbers and strings are written as encoding/json writes them") {
  CHECK(json_float(0) == "0");
  CHECK(json_float(0.0123) == "0.0123");
  CHECK(json_float(1e-6) == "0.000001");
  CHECK(json_float(1e-7) == "1e-7");
  CHECK(json_float(2.5e-10) == "2.5e-10");
  CHECK(json_float(123456789) == "123456789");
  CHECK(json_float(1e20) == "100000000000000000000");
  CHECK(json_float(1e21) == "1e+21");
  CHECK(json_string("./prog") == "\"./prog\"");
  CHECK(json_string("a\"b\\c\nd\te") == "\"a\\\"b\\\\c\\nd\\te\"");
  CHECK(json_string("<&>") == "\"\\u003c\\u0026\\u003e\"");
  CHECK(json_string(std::string("\x01", 1)) == "\"\\u0001\"");
  CHECK(json_string("héllo 世界") == "\"héllo 世界\"");          // valid UTF-8 passes through
  CHECK(json_string("a\xff" "b") == "\"a\\ufffdb\"");          // an invalid byte
  CHECK(json_string("\xc0\xaf") == "\"\\ufffd\\ufffd\"");      // an overlong form
  CHECK(json_string("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
  CHECK(json_string("\xe2\x80\xa8") == "\"\\u2028\"");
}

TEST_CASE("monitor: PrometheusText has the Go collector's families, sorted, with MemStats' values") {
  gort_test::clean_gc();
  std::string text = gort::monitor::PrometheusText();
  gort::MemStats ms = gort_test::read_stats();
  Exposition e = parse_exposition(text);

  // client_golang 1.14's collectors.NewGoCollector() (check_exporters.sh compares with the
  // real one): 30 families.
  const std::map<std::string, std::string> expected = {
      {"go_gc_duration_seconds", "summary"}, {"go_goroutines", "gauge"}, {"go_info", "gauge"},
      {"go_memstats_alloc_bytes", "gauge"}, {"go_memstats_alloc_bytes_total", "counter"},
      {"go_memstats_buck_hash_sys_bytes", "gauge"}, {"go_memstats_frees_total", "counter"},
      {"go_memstats_gc_sys_bytes", "gauge"}, {"go_memstats_heap_alloc_bytes", "gauge"},
      {"go_memstats_heap_idle_bytes", "gauge"}, {"go_memstats_heap_inuse_bytes", "gauge"},
      {"go_memstats_heap_objects", "gauge"}, {"go_memstats_heap_released_bytes", "gauge"},
      {"go_memstats_heap_sys_bytes", "gauge"}, {"go_memstats_last_gc_time_seconds", "gauge"},
      {"go_memstats_lookups_total", "counter"}, {"go_memstats_mallocs_total", "counter"},
      {"go_memstats_mcache_inuse_bytes", "gauge"}, {"go_memstats_mcache_sys_bytes", "gauge"},
      {"go_memstats_mspan_inuse_bytes", "gauge"}, {"go_memstats_mspan_sys_bytes", "gauge"},
      {"go_memstats_next_gc_bytes", "gauge"}, {"go_memstats_other_sys_bytes", "gauge"},
      {"go_memstats_stack_inuse_bytes", "gauge"}, {"go_memstats_stack_sys_bytes", "gauge"},
      {"go_memstats_sys_bytes", "gauge"}, {"go_threads", "gauge"}};
  CHECK(e.types == expected);
  CHECK(e.help.size() == expected.size());
  CHECK(std::is_sorted(e.order.begin(), e.order.end()));
  CHECK(e.help["go_memstats_heap_alloc_bytes"] == "Number of heap bytes allocated and still in use.");

  // Values that cannot move between the two reads (nothing allocates meanwhile but small
  // runtime bookkeeping, and no collection starts): the cycle counts and pauses, the heap goal.
  CHECK(e.samples["go_gc_duration_seconds_count"] == ms.NumGC);
  CHECK(e.samples["go_gc_duration_seconds_sum"] == doctest::Approx(ms.PauseTotalNs / 1e9).epsilon(1e-9));
  CHECK(e.samples["go_memstats_last_gc_time_seconds"] == doctest::Approx(ms.LastGC / 1e9).epsilon(1e-12));
  CHECK(e.samples["go_memstats_next_gc_bytes"] == ms.NextGC);
  CHECK(e.samples["go_memstats_sys_bytes"] <= ms.Sys);
  CHECK(e.samples["go_memstats_sys_bytes"] > 0);
  CHECK(e.samples["go_memstats_heap_objects"] > 0);
  CHECK(e.samples["go_memstats_heap_objects"] <= ms.HeapObjects + 64);
  CHECK(e.samples["go_memstats_mallocs_total"] <= ms.Mallocs);
  CHECK(e.samples["go_memstats_mallocs_total"] - e.samples["go_memstats_frees_total"] ==
        e.samples["go_memstats_heap_objects"]);
  CHECK(e.samples["go_memstats_alloc_bytes"] == e.samples["go_memstats_heap_alloc_bytes"]);
  // StackInuse moves when a goroutine (the runtime's own too) starts or ends between the reads:
  // the two must agree once it stays put.
  bool stack_agrees = e.samples["go_memstats_stack_inuse_bytes"] == ms.StackInuse;
  for (int i = 0; i < 50 && !stack_agrees; ++i) {
    double exported = parse_exposition(gort::monitor::PrometheusText()).samples["go_memstats_stack_inuse_bytes"];
    stack_agrees = exported == gort_test::read_stats().StackInuse;
  }
  CHECK(stack_agrees);
  // The quantiles: ordered, the maximum the largest pause in the ring.
  double q0 = e.samples["go_gc_duration_seconds{quantile=\"0\"}"];
  double q50 = e.samples["go_gc_duration_seconds{quantile=\"0.5\"}"];
  double q100 = e.samples["go_gc_duration_seconds{quantile=\"1\"}"];
  uint64_t max_pause = 0;
  for (uint32_t i = 0; i < std::min<uint32_t>(ms.NumGC, 256); ++i) max_pause = std::max(max_pause, ms.PauseNs[i]);
  CHECK(q0 <= q50);
  CHECK(q50 <= q100);
  CHECK(q100 == doctest::Approx(max_pause / 1e9).epsilon(1e-9));
  CHECK(e.samples["go_goroutines"] == gort::NumGoroutine());
  CHECK(e.samples["go_threads"] >= 2);  // this thread and the scheduler's first M at least
  auto info = e.samples.lower_bound("go_info{version=\"gort");
  REQUIRE(info != e.samples.end());
  CHECK(info->first.rfind("go_info{version=\"gort0.", 0) == 0);
  CHECK(info->second == 1);
}

TEST_CASE("monitor: ExpvarJSON is expvar's document with every MemStats field under Go's name") {
  gort_test::clean_gc();
  std::string text = gort::monitor::ExpvarJSON();
  gort::MemStats ms = gort_test::read_stats();
  CHECK(text.rfind("{\n\"cmdline\": [", 0) == 0);
  CHECK(text.find(",\n\"memstats\": {") != std::string::npos);
  CHECK(text.substr(text.size() - 3) == "\n}\n");
  auto doc = nlohmann::ordered_json::parse(text);
  REQUIRE(doc["cmdline"].is_array());
  CHECK(doc["cmdline"][0].get<std::string>().find("gort-tests") != std::string::npos);
  const auto& m = doc["memstats"];
  std::vector<std::string> keys;
  for (auto it = m.begin(); it != m.end(); ++it) keys.push_back(it.key());
  // encoding/json writes runtime.MemStats' fields in declaration order.
  const std::vector<std::string> go_fields = {
      "Alloc", "TotalAlloc", "Sys", "Lookups", "Mallocs", "Frees", "HeapAlloc", "HeapSys", "HeapIdle",
      "HeapInuse", "HeapReleased", "HeapObjects", "StackInuse", "StackSys", "MSpanInuse", "MSpanSys",
      "MCacheInuse", "MCacheSys", "BuckHashSys", "GCSys", "OtherSys", "NextGC", "LastGC", "PauseTotalNs",
      "PauseNs", "PauseEnd", "NumGC", "NumForcedGC", "GCCPUFraction", "EnableGC", "DebugGC", "BySize"};
  CHECK(keys == go_fields);
  CHECK(m["PauseNs"].size() == 256);
  CHECK(m["PauseEnd"].size() == 256);
  REQUIRE(m["BySize"].size() == 61);
  for (size_t i = 0; i < 61; ++i) CHECK(m["BySize"][i]["Size"].get<uint32_t>() == ms.BySize[i].Size);
  CHECK(m["NumGC"].get<uint32_t>() == ms.NumGC);
  CHECK(m["PauseTotalNs"].get<uint64_t>() == ms.PauseTotalNs);
  CHECK(m["LastGC"].get<uint64_t>() == ms.LastGC);
  for (size_t i = 0; i < 256; ++i) CHECK(m["PauseNs"][i].get<uint64_t>() == ms.PauseNs[i]);
  CHECK(m["EnableGC"].get<bool>());
  CHECK_FALSE(m["DebugGC"].get<bool>());
  CHECK(m["GCCPUFraction"].get<double>() >= 0);
  CHECK(m["GCCPUFraction"].get<double>() < 1);
  CHECK(m["Sys"].get<uint64_t>() ==
        m["HeapSys"].get<uint64_t>() + m["StackSys"].get<uint64_t>() + m["MSpanSys"].get<uint64_t>() +
            m["MCacheSys"].get<uint64_t>() + m["BuckHashSys"].get<uint64_t>() + m["GCSys"].get<uint64_t>() +
            m["OtherSys"].get<uint64_t>());
}

TEST_CASE("monitor: Server serves /metrics and /debug/vars on goroutines, from any port") {
  // Goroutines of earlier tests may still be leaving the count: start from a steady one (the
  // same for 20 ms), and with a collection done (/debug/vars' NumGC).
  gort::GC();
  int goroutines_before = gort::NumGoroutine();
  for (int steady = 0; steady < 20;) {
    gort::sleep_for(std::chrono::milliseconds(1));
    int now = gort::NumGoroutine();
    steady = now == goroutines_before ? steady + 1 : 0;
    goroutines_before = now;
  }
  {
    gort::monitor::Server srv("127.0.0.1:0");
    REQUIRE(srv.port() > 0);
    CHECK(gort::NumGoroutine() > goroutines_before);  // the listener
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_decompress(true);
    for (int i = 0; i < 3; ++i) {  // a kept-alive connection, several scrapes
      auto res = cli.Get("/metrics", {{"Accept-Encoding", "gzip"}});
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
      CHECK(res->get_header_value("Content-Encoding") == "gzip");
      Exposition e = parse_exposition(res->body);
      CHECK(e.types.size() == 27);
      CHECK(e.samples["go_goroutines"] >= goroutines_before + 2);  // listener and connection
    }
    auto vars = cli.Get("/debug/vars");
    REQUIRE(vars);
    CHECK(vars->status == 200);
    CHECK(vars->get_header_value("Content-Type") == "application/json; charset=utf-8");
    auto doc = nlohmann::json::parse(vars->body);
    CHECK(doc["memstats"]["NumGC"].get<uint32_t>() > 0);
    auto dump = cli.Get("/debug/pprof/goroutine?debug=2");
    REQUIRE(dump);
    CHECK(dump->status == 200);
    CHECK(dump->body.find("goroutine ") != std::string::npos);
    CHECK(dump->body.find("[running]:") != std::string::npos);  // this connection's goroutine
    auto proto = cli.Get("/debug/pprof/goroutine");  // the goroutine profile (test_mprof.cpp reads one)
    REQUIRE(proto);
    CHECK(proto->status == 200);
    CHECK(proto->get_header_value("Content-Type") == "application/octet-stream");
    CHECK(proto->body.substr(0, 2) == "\x1f\x8b");  // gzip
    auto grouped = cli.Get("/debug/pprof/goroutine?debug=1");  // Go's grouped text: not written
    REQUIRE(grouped);
    CHECK(grouped->status == 501);
    auto missing = cli.Get("/nothing");
    REQUIRE(missing);
    CHECK(missing->status == 404);

    // Many clients at once, each on its own connection goroutine, while collections run.
    gort::WaitGroup wg;
    std::atomic<int> ok{0};
    for (int c = 0; c < 8; ++c) {
      wg.Add(1);
      gort::go([&] {
        for (int i = 0; i < 5; ++i) {
          auto r = gort::blocking([&] {
            httplib::Client each("127.0.0.1", srv.port());
            return each.Get("/debug/vars");
          });
          if (r && r->status == 200 && nlohmann::json::parse(r->body)["memstats"]["BySize"].size() == 61) ++ok;
          gort::GC();
        }
        wg.Done();
      });
    }
    wg.Wait();
    CHECK(ok.load() == 40);
  }
  // The destructor waited for the listener and every connection goroutine; they (and the
  // clients above) leave the count once their functions have returned, right after.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (gort::NumGoroutine() != goroutines_before && std::chrono::steady_clock::now() < deadline)
    gort::sleep_for(std::chrono::milliseconds(1));
  CHECK(gort::NumGoroutine() == goroutines_before);
}

TEST_CASE("monitor: Server rejects a malformed address and reports one it cannot bind") {
  CHECK_THROWS_AS(gort::monitor::Server("127.0.0.1"), std::invalid_argument);
  CHECK_THROWS_AS(gort::monitor::Server("127.0.0.1:http"), std::invalid_argument);
  CHECK_THROWS_AS(gort::monitor::Server("127.0.0.1:70000"), std::invalid_argument);
  CHECK_THROWS_AS(gort::monitor::Server("127.0.0.1:-1"), std::invalid_argument);
  gort::monitor::Server first("127.0.0.1:0");
  std::string taken = "127.0.0.1:" + std::to_string(first.port());
  CHECK_THROWS_AS(gort::monitor::Server{taken}, std::system_error);
  CHECK_THROWS_AS(gort::monitor::Server("203.0.113.1:0"), std::system_error);  // not ours (TEST-NET-3)
  gort::monitor::Server v6("[::1]:0");  // IPv6 loopback, when the machine has it
  CHECK(v6.port() > 0);
}

namespace {
// Starts a server in a frame of its own, which clean_gc's stack scrub then wipes: nothing but
// the server's own state can keep what it allocated alive.
__attribute__((noinline)) std::unique_ptr<gort::monitor::Server> start_server() {
  return std::make_unique<gort::monitor::Server>();
}
}  // namespace

TEST_CASE("monitor: a Server outlives collections between its start and its end") {
  // The server's own state lives in malloc'd memory, which the collector does not scan: nothing
  // of it may be a managed object that only it references (a Chan was, and was freed).
  for (int i = 0; i < 20; ++i) {
    std::unique_ptr<gort::monitor::Server> srv = start_server();
    gort_test::clean_gc();
    for (int k = 0; k < 20000; ++k) gort::KeepAlive(gort::make<std::array<uint64_t, 12>>());  // reuse freed memory
    gort_test::clean_gc();
    httplib::Client cli("127.0.0.1", srv->port());
    auto res = cli.Get("/debug/vars");
    REQUIRE(res);
    CHECK(res->status == 200);
    srv.reset();
  }
}
