// Monitoring the way Go operators know it: the Prometheus Go collector's metrics, expvar's
// /debug/vars document, and an HTTP server that serves them (docs/monitoring.md).
#pragma once
#include <memory>
#include <string>
#include <string_view>

namespace gort::monitor {

// Prometheus text exposition format 0.0.4 with exactly the metric families, names, help texts
// and types that client_golang 1.14's Go collector (collectors.NewGoCollector()) exposes:
// go_gc_duration_seconds (summary of the last 256 pauses), go_goroutines, go_info, go_threads and
// the 26 go_memstats_* families. Families are sorted by name; numbers are formatted as Go's
// exposition formats them.
std::string PrometheusText();

// Go's expvar document, as served at /debug/vars: {"cmdline": [...], "memstats": {...}}, with
// "memstats" holding every field of MemStats under Go's names, as encoding/json writes them.
std::string ExpvarJSON();

// An HTTP server (cpp-httplib) whose listener and connections run on goroutines. It serves
//   /metrics                  PrometheusText()  (gzip when the client accepts it)
//   /debug/vars               ExpvarJSON()
//   /debug/pprof/heap         pprof::WriteHeapProfile (?gc=1 collects first, as in Go)
//   /debug/pprof/goroutine    ?debug=1 or 2: Go's goroutine dump (ids, states, wait reasons)
// on `address` ("host:port"; "[::1]:port" for IPv6; port 0 picks a free one). It needs a
// running Runtime and an attached thread or goroutine to start it; the destructor stops it and
// waits for its goroutines. Throws std::invalid_argument for a malformed address and
// std::system_error when the address cannot be bound.
class Server {
 public:
  explicit Server(std::string_view address = "127.0.0.1:0");
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;  // the port it listens on

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gort::monitor
