// pause: stop-the-world pauses with a large live pointer graph under churn, on gort.
// Usage: bench-pause [LIVE_MB]   (512 by default)
// A live array of LIVE_MB*16384 nodes (a next pointer and 48 bytes), chained; then 40 rounds of:
// replace every 8th live node with a fresh one (its predecessor re-linked to it, it linked to its
// neighbour), and allocate 200,000 short-lived nodes in chains cut every 1000.
// stdout: the result (identical across the gort and Go versions)
// stderr: wall_ms gcs pause_max_us pause_p50_us gccpu rss_mb (key=value)
#include <gort/gort.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Node {
  gort::Ref<Node> next;
  uint64_t payload[6] = {};
  void trace(gort::Tracer& t) const { t.visit(next); }
};

}  // namespace

int main(int argc, char** argv) {
  long live_mb = argc > 1 ? std::atol(argv[1]) : 512;
  gort::Runtime rt;
  auto start = std::chrono::steady_clock::now();
  const size_t n = static_cast<size_t>(live_mb) * 16384;

  gort::Root<gort::Array<gort::Ref<Node>>> live(gort::make_array<gort::Ref<Node>>(n));
  auto& arr = *live;
  for (size_t i = 0; i < n; ++i) {
    Node* x = gort::make<Node>();
    x->payload[0] = i;
    arr[i] = x;
    if (i > 0) arr[i - 1]->next = x;
  }
  gort::MemStats before;
  gort::ReadMemStats(&before);

  uint64_t garbage_sum = 0;
  for (int round = 0; round < 40; ++round) {
    for (size_t i = static_cast<size_t>(round % 8); i < n; i += 8) {
      Node* fresh = gort::make<Node>();
      fresh->payload[0] = i;
      if (i + 1 < n) fresh->next = arr[i + 1];
      if (i > 0) arr[i - 1]->next = fresh;
      arr[i] = fresh;
    }
    Node* chain = nullptr;
    for (int k = 0; k < 200000; ++k) {
      if (k % 1000 == 0) chain = nullptr;
      Node* g = gort::make<Node>();
      g->payload[0] = static_cast<uint64_t>(k);
      g->next = chain;
      chain = g;
      garbage_sum += g->payload[0];
    }
  }

  // Walk the chain: every live node is on it exactly once, in order.
  uint64_t count = 0, sum = 0;
  for (const Node* x = arr[0].get(); x; x = x->next.get()) {
    ++count;
    sum += x->payload[0];
  }
  auto wall = std::chrono::steady_clock::now() - start;
  std::printf("live nodes: %llu, payload sum: %llu, garbage sum: %llu\n", static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(sum), static_cast<unsigned long long>(garbage_sum));
  std::fflush(stdout);

  gort::MemStats ms;
  gort::ReadMemStats(&ms);
  std::vector<uint64_t> pauses;
  for (uint32_t c = before.NumGC; c < ms.NumGC && ms.NumGC - c <= 256; ++c) pauses.push_back(ms.PauseNs[c % 256]);
  std::sort(pauses.begin(), pauses.end());
  double max_us = pauses.empty() ? 0 : pauses.back() / 1e3;
  double p50_us = pauses.empty() ? 0 : pauses[pauses.size() / 2] / 1e3;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "wall_ms=%.1f gcs=%u pause_max_us=%.1f pause_p50_us=%.1f gccpu=%.3f rss_mb=%.1f\n",
               std::chrono::duration<double, std::milli>(wall).count(), ms.NumGC - before.NumGC, max_us, p50_us,
               ms.GCCPUFraction, ru.ru_maxrss / 1024.0);
  return count == n ? 0 : 1;
}
