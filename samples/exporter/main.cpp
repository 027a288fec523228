// An HTTP exporter next to a workload: point Prometheus, curl or a browser at it.
//
//   exporter [ADDRESS] [SECONDS]
//
// Serves /metrics (Prometheus, client_golang's Go-collector names) and /debug/vars (Go's expvar
// JSON) on ADDRESS (default 127.0.0.1:0: loopback, a free port), prints the URLs, and keeps four
// goroutines allocating binary trees meanwhile, so that the heap, the collector's pauses and
// the goroutine count move. Runs SECONDS seconds (default: until interrupted).
#include <gort/gort.hpp>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

namespace {

struct Node {
  gort::Ref<Node> left, right;
  void trace(gort::Tracer& t) const {
    t.visit(left);
    t.visit(right);
  }
};

Node* tree(int depth) {
  Node* n = gort::make<Node>();
  if (depth > 0) {
    n->left = tree(depth - 1);
    n->right = tree(depth - 1);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = argc > 1 ? argv[1] : "127.0.0.1:0";
  long seconds = argc > 2 ? std::atol(argv[2]) : 0;
  return gort::run([&] {
    gort::monitor::Server server(address);
    std::string host = address.substr(0, address.rfind(':'));
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    std::printf("serving on port %d\n  http://%s:%d/metrics\n  http://%s:%d/debug/vars\n", server.port(),
                host.c_str(), server.port(), host.c_str(), server.port());
    std::fflush(stdout);

    gort::Chan<bool> stop;
    gort::WaitGroup workers;
    gort::Root<Node> long_lived(tree(16));  // about 3 MiB that stays
    for (int w = 0; w < 4; ++w) {
      workers.Add(1);
      gort::go([&, w] {
        gort::Chan<bool> stopped = stop;
        for (int i = 0;; ++i) {
          Node* t = tree(10 + (i + w) % 6);  // garbage at once: the sawtooth
          gort::KeepAlive(t);
          std::optional<bool> closed;
          if (gort::select(gort::on_recv(stopped, closed), gort::on_default()) == 0) break;
          gort::sleep_for(std::chrono::milliseconds(5));
        }
        workers.Done();
      });
    }
    if (seconds > 0) gort::sleep_for(std::chrono::seconds(seconds));
    else
      for (;;) gort::sleep_for(std::chrono::hours(1));
    stop.close();
    workers.Wait();
  });
}
