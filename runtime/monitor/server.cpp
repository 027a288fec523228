// monitor::Server: cpp-httplib's server with its threads replaced by goroutines.
//
// The listener is a goroutine that runs httplib's accept loop inside blocking() (its processor
// serves other goroutines while it waits in accept). httplib hands each accepted connection to its
// task queue; gort's queue starts a goroutine for it, which reads requests and writes responses
// inside blocking() too, and leaves blocking() only around a handler's own work (ReadMemStats,
// building the text): the handler runs as an ordinary goroutine with a processor, like Go's cgo
// callbacks after exitsyscall.
//
// Stopping: the destructor calls httplib's stop(), which closes the listening socket; the accept
// loop ends, httplib's shutdown() of the queue waits for the connection goroutines (each ends
// once its connection closes or idles for kIdleTimeout), and the listener goroutine reports
// that it finished on a WaitGroup, which the destructor waits for.
#include <gort/goroutine.hpp>
#include <gort/memstats.hpp>
#include <gort/monitor.hpp>
#include <gort/pprof.hpp>
#include <gort/sync.hpp>

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "runtime/core/sanitizer.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::monitor {

namespace {

constexpr time_t kIdleTimeout = 1;  // seconds a kept-alive or half-sent connection may idle

// Leaves blocking() for the scope: the goroutine takes a processor again (and may move to
// another thread meanwhile), so it may allocate, start goroutines and park.
struct WithProcessor {
  WithProcessor() { internal::exit_blocking(); }
  ~WithProcessor() { internal::enter_blocking(); }
  WithProcessor(const WithProcessor&) = delete;
  WithProcessor& operator=(const WithProcessor&) = delete;
};

class GoroutineQueue final : public httplib::TaskQueue {
 public:
  // Called by the listener goroutine, inside blocking().
  void enqueue(std::function<void()> fn) override {
    WithProcessor p;
    running_.Add(1);
    go([this](std::function<void()> task) {
      blocking(task);
      running_.Done();
    }, std::move(fn));
  }
  void shutdown() override {
    WithProcessor p;
    running_.Wait();
  }

 private:
  WaitGroup running_;
};

// "host:port", "[v6 host]:port" or ":port" (every address, as Go's net.Listen reads it).
void parse_address(std::string_view address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) throw std::invalid_argument("gort::monitor::Server: address \"" + std::string(address) + "\" has no :port");
  std::string_view h = address.substr(0, colon), p = address.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), *port);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || *port < 0 || *port > 65535)
    throw std::invalid_argument("gort::monitor::Server: address \"" + std::string(address) + "\" has no valid port");
  *host = h.empty() ? "0.0.0.0" : std::string(h);
}

// Runs a handler's work as an ordinary goroutine and makes its answer the response.
template <class F>
httplib::Server::Handler handler(const char* content_type, F body) {
  return [content_type, body](const httplib::Request&, httplib::Response& res) {
    std::string text;
    {
      WithProcessor p;
      text = body();
    }
    res.set_content(std::move(text), content_type);
  };
}

}  // namespace

struct Server::Impl {
  httplib::Server http;
  int port = 0;
  std::atomic<bool> finished{false};  // the accept loop returned (stopped, or failed at once)
  // The listener goroutine, until it ends. (A WaitGroup, not a Chan: Impl is in malloc'd memory,
  // which the collector does not scan, and a Chan is a managed object.)
  WaitGroup listening;
};

Server::Server(std::string_view address) : impl_(std::make_unique<Impl>()) {
  std::string host;
  int port = 0;
  parse_address(address, &host, &port);
  httplib::Server& http = impl_->http;
  http.new_task_queue = [] { return new GoroutineQueue; };
  // SO_REUSEADDR as Go's listeners set it, not httplib's default SO_REUSEPORT, which lets a
  // second server bind a port in use and share its connections.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_keep_alive_timeout(kIdleTimeout);
  http.set_read_timeout(kIdleTimeout, 0);
  // ThreadSanitizer builds: TSan holds a signal back while its thread waits in accept() (a call
  // it does not count as blocking), so a collection would wait for the next connection to stop
  // the listener's thread. An idle interval makes httplib wait in poll() first, which TSan
  // interrupts (docs/reliability.md, "Sanitizers").
  if (internal::kThreadSanitizer) http.set_idle_interval(0, 100000);
  http.Get("/metrics", handler("text/plain; version=0.0.4; charset=utf-8", [] { return PrometheusText(); }));
  http.Get("/debug/vars", handler("application/json; charset=utf-8", [] { return ExpvarJSON(); }));
  // Go's net/http/pprof: ?gc=1 collects first, so that the profile is of the heap as it is now.
  http.Get("/debug/pprof/heap", [](const httplib::Request& req, httplib::Response& res) {
    std::string body;
    {
      WithProcessor p;
      if (req.get_param_value("gc") == "1") GC();
      std::ostringstream out;
      pprof::WriteHeapProfile(out);
      body = std::move(out).str();
    }
    res.set_header("Content-Disposition", "attachment; filename=\"heap\"");
    res.set_content(std::move(body), "application/octet-stream");
  });
  // Go's goroutine profile (no ?debug, or debug=0: profile.proto) and dump (?debug=2, text).
  // Go's debug=1 (text grouped by stack, with addresses) is not written: refused, not faked.
  http.Get("/debug/pprof/goroutine", [](const httplib::Request& req, httplib::Response& res) {
    std::string debug = req.get_param_value("debug");
    if (debug != "" && debug != "0" && debug != "2") {
      res.status = 501;
      res.set_content("gort serves the goroutine profile (no ?debug) and the dump (?debug=2)\n",
                      "text/plain; charset=utf-8");
      return;
    }
    std::string body;
    {
      WithProcessor p;
      if (debug == "2") {
        body = internal::goroutine_dump();
      } else {
        std::ostringstream out;
        pprof::WriteGoroutineProfile(out);
        body = std::move(out).str();
      }
    }
    if (debug == "2") {
      res.set_content(std::move(body), "text/plain; charset=utf-8");
    } else {
      res.set_header("Content-Disposition", "attachment; filename=\"goroutine\"");
      res.set_content(std::move(body), "application/octet-stream");
    }
  });
  errno = 0;
  bool bound = port == 0 ? (port = http.bind_to_any_port(host)) > 0 : http.bind_to_port(host, port);
  if (!bound) {
    int err = errno ? errno : EADDRNOTAVAIL;
    throw std::system_error(err, std::generic_category(), "gort::monitor::Server: cannot listen on " + std::string(address));
  }
  impl_->port = port;
  impl_->listening.Add(1);
  go([impl = impl_.get()] {
    blocking([impl] { impl->http.listen_after_bind(); });
    impl->finished.store(true);
    impl->listening.Done();
  });
  // stop() only stops a server whose accept loop has started: wait for it.
  while (!http.is_running() && !impl_->finished.load()) sleep_for(std::chrono::microseconds(100));
}

Server::~Server() {
  impl_->http.stop();
  impl_->listening.Wait();
}

int Server::port() const { return impl_->port; }

}  // namespace gort::monitor
