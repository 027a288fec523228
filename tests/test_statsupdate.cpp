// core/statsupdate: the per-thread sequence numbers behind ReadMemStats' consistent snapshots.
#include <doctest/doctest.h>
#include <gort/gort.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime/core/statsupdate.hpp"
#include "runtime/core/thread.hpp"

using namespace std::chrono_literals;

TEST_CASE("statsupdate: a batch makes its thread's number odd; nested batches count once") {
  gort::AttachThread attach;
  auto& seq = gort::internal::t_local.record->stats_seq;
  uint32_t before = seq.load();
  CHECK(before % 2 == 0);
  {
    gort::internal::StatsUpdate outer;
    CHECK(seq.load() == before + 1);
    {
      gort::internal::StatsUpdate inner;
      CHECK(seq.load() == before + 1);
    }
    CHECK(seq.load() == before + 1);
  }
  CHECK(seq.load() == before + 2);
}

TEST_CASE("statsupdate: a reader waits out a batch in progress, and reads again after one that overlapped") {
  std::atomic<int> phase{0};
  std::thread writer([&] {
    gort::AttachThread attach;
    {
      gort::internal::StatsUpdate batch;
      phase = 1;
      while (phase.load() != 2) std::this_thread::sleep_for(1ms);
      std::this_thread::sleep_for(20ms);  // the reader keeps trying meanwhile
      phase = 3;                          // the batch ends right after
    }
  });
  while (phase.load() != 1) std::this_thread::sleep_for(1ms);
  int reads = 0;
  bool saw_batch_open = false;
  phase = 2;
  int attempts = gort::internal::read_consistently([&] {
    ++reads;
    saw_batch_open |= phase.load() != 3;
  });
  CHECK(phase.load() == 3);      // it returned only once the batch was ending
  CHECK_FALSE(saw_batch_open);  // and no read ran while the batch was open
  CHECK(attempts > 1);
  CHECK(reads >= 1);
  writer.join();

  // A batch that begins and ends during a read makes the reader read again.
  std::atomic<bool> attached{false}, in_read{false}, batch_done{false};
  std::thread writer2([&] {
    gort::AttachThread attach;  // before the read: attaching takes the registry lock the read holds
    attached = true;
    while (!in_read.load()) std::this_thread::yield();
    { gort::internal::StatsUpdate batch; }
    batch_done = true;
  });
  while (!attached.load()) std::this_thread::yield();
  int runs = 0;
  gort::internal::read_consistently([&] {
    if (++runs == 1) {
      in_read = true;
      while (!batch_done.load()) std::this_thread::yield();  // the whole batch inside this read
    }
  });
  CHECK(runs >= 2);
  writer2.join();
}

TEST_CASE("statsupdate: a thread that is not attached shares one number") {
  std::atomic<bool> open{false}, release{false};
  std::thread writer([&] {  // never attached
    {
      gort::internal::StatsUpdate batch;
      open = true;
      while (!release.load()) std::this_thread::sleep_for(1ms);
    }
  });
  while (!open.load()) std::this_thread::sleep_for(1ms);
  std::atomic<bool> returned{false};
  std::thread reader([&] {
    gort::internal::read_consistently([] {});
    returned = true;
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(returned.load());  // the unattached writer's batch holds it back
  release = true;
  reader.join();
  writer.join();
  CHECK(returned.load());
}
