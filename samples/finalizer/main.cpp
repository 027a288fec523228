// The finalizer program Go users know (runtime docs, and the post gort started from): an object
// gets a finalizer that reads MemStats, prints when the last collection was, and creates the next
// finalized object; main forces a collection periodically.
//
//   finalizer [--interval MS] [--rounds N]     defaults: 100 ms, 5 rounds
//
// Until gort has goroutines, the first object is made on an attached std::thread (Go: a goroutine);
// each finalizer runs on gort's finalizer thread and makes the next object there.
#include <gort/gort.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

namespace {

struct Garbage {
  int64_t a = 0;
};

void produce_finalized_garbage();

void notify(Garbage*) {
  gort::MemStats stats;
  gort::ReadMemStats(&stats);
  // Go prints time.Unix(0, LastGC); print it the same way, in UTC.
  time_t secs = static_cast<time_t>(stats.LastGC / 1000000000);
  char when[64];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&secs));
  std::printf("Last GC was: %s.%09llu +0000 UTC (NumGC=%u)\n", when,
              static_cast<unsigned long long>(stats.LastGC % 1000000000), stats.NumGC);
  std::fflush(stdout);
  produce_finalized_garbage();
}

void produce_finalized_garbage() {
  Garbage* x = gort::make<Garbage>();
  gort::SetFinalizer(x, notify);
}

}  // namespace

int main(int argc, char** argv) {
  int interval_ms = 100, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--interval")) interval_ms = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--interval MS] [--rounds N]\n", argv[0]);
      return 2;
    }
  }
  gort::Runtime rt;
  std::thread([] {
    gort::AttachThread attached;
    produce_finalized_garbage();
  }).join();
  for (int i = 0; i < rounds; ++i) {
    gort::GC();
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));  // give the finalizer time to run
  }
  return 0;
}
