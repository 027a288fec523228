// Misuse that must end in a clear error: each case runs in a child process of the suite
// (tests/test_alloc.cpp, test_pacer.cpp), which checks the exit status and the message.
// Usage: bad-input CASE. Exit status 0 means the misuse went unnoticed, unless the case says
// otherwise.
#include <gort/gort.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {
int allocate_bytes(size_t size) {
  gort::Runtime rt;
  void* p = gort::internal::allocate(size, 0, true);
  std::printf("%p\n", p);
  return 0;
}
}  // namespace

// A named frame for the goroutine dump to show.
__attribute__((noinline)) void stuck_sender(gort::Chan<int> ch) {
  ch.send(1);
  asm volatile("");  // not a tail call: this frame stays on the stack
}

// Deadlocks and near misses (tests/test_sched.cpp): a deadlock ends the process with status 2
// and Go's message; the others must finish (status 0).
int deadlock_case(const char* c) {
  using namespace std::chrono_literals;
  if (std::strcmp(c, "deadlock-goroutine") == 0) {  // main (a goroutine) waits for nobody
    return gort::run([] {
      gort::WaitGroup wg;
      wg.Add(1);
      gort::Chan<int> never;
      gort::go([&] { stuck_sender(never); });  // a second goroutine stuck too
      std::optional<int> a, b;
      gort::select(gort::on_recv(gort::Chan<int>(), a), gort::on_recv(gort::Chan<int>(), b));
      wg.Wait();
    });
  }
  if (std::strcmp(c, "deadlock-thread") == 0) {  // an attached thread waits on a channel
    gort::Runtime rt;
    gort::Chan<int> ch;
    ch.recv();
    return 0;
  }
  if (std::strcmp(c, "sleeper") == 0) {  // a timer will wake it: no deadlock
    return gort::run([] {
      gort::Chan<int> ch;
      gort::go([ch]() mutable {
        gort::sleep_for(300ms);
        ch.send(1);
      });
      return ch.recv().value() - 1;
    });
  }
  if (std::strcmp(c, "blocked-in-syscall") == 0) {  // a goroutine in blocking(): no deadlock
    return gort::run([] {
      gort::Chan<int> ch;
      gort::go([ch]() mutable {
        gort::blocking([] { ::usleep(300000); });
        ch.send(1);
      });
      return ch.recv().value() - 1;
    });
  }
  if (std::strcmp(c, "outside-thread") == 0) {  // a thread gort does not know yet will send
    // Named like one of gort's own threads, as every thread of a program called "gort-..." is
    // (threads inherit the name): gort must know its own threads by id, not by name.
    pthread_setname_np(pthread_self(), "gort-lookalike");
    gort::Runtime rt;
    gort::Chan<int> ch;
    std::thread t([ch]() mutable {
      std::this_thread::sleep_for(300ms);
      gort::AttachThread attach;
      ch.send(1);
    });
    int v = ch.recv().value();
    t.join();
    return v - 1;
  }
  if (std::strcmp(c, "sigquit") == 0) {  // Go's SIGQUIT: every goroutine, then status 2
    return gort::run([] {
      gort::Chan<int> ch;
      gort::go([ch]() mutable { ch.recv(); });
      gort::sleep_for(50ms);
      ::raise(SIGQUIT);
      gort::sleep_for(5s);
      return 0;
    });
  }
  return -1;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const char* c = argv[1];
  if (int r = deadlock_case(c); r >= 0) return r;
  // More than the 48-bit address space: Go's "out of memory". Its page count would wrap.
  if (std::strcmp(c, "huge-allocate") == 0) return allocate_bytes(size_t{1} << 49);
  if (std::strcmp(c, "wrapping-allocate") == 0) return allocate_bytes(~size_t{0} - 100);
  // Out of memory under `ulimit -v` (RLIMIT_AS): live data grows until the OS refuses a mapping,
  // which must end the program with Go's fatal error naming the request, not a crash.
  if (std::strcmp(c, "ulimit-v") == 0) {
    rlimit lim{size_t{1} << 30, size_t{1} << 30};
    if (setrlimit(RLIMIT_AS, &lim) != 0) return 4;
    return gort::run([] {
      std::vector<gort::Root<gort::Array<char>>> live;
      for (int i = 0; i < 1024; ++i) live.emplace_back(gort::make_array<char>(size_t{16} << 20));
      return 0;  // 16 GiB live under a 1 GiB limit: unreachable
    });
  }
  // fork() in a program with goroutines (tests/test_sched.cpp): the child may exec (status 0 from
  // the parent once the child's `true` exited 0); a child that spawns a goroutine, waits or
  // collects must end with the fatal error, not hang (the parent prints how the child ended).
  if (std::strncmp(c, "fork-", 5) == 0) {
    const char* what = c + 5;
    return gort::run([what] {
      gort::Chan<int> never;
      for (int i = 0; i < 8; ++i) gort::go([never]() mutable { never.recv(); });  // parked goroutines
      gort::GC();
      pid_t child = fork();
      if (child == 0) {
        if (std::strcmp(what, "exec") == 0) execl("/bin/true", "true", static_cast<char*>(nullptr));
        if (std::strcmp(what, "go") == 0) gort::go([] {});
        if (std::strcmp(what, "wait") == 0) never.recv();
        if (std::strcmp(what, "gc") == 0) gort::GC();
        _exit(0);  // the misuse went unnoticed
      }
      int status = 0;
      waitpid(child, &status, 0);
      if (WIFEXITED(status)) std::fprintf(stderr, "child exited %d\n", WEXITSTATUS(status));
      else if (WIFSIGNALED(status)) std::fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
      never.close();
      return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 5;
    });
  }
  // A memory limit far below the live heap (run with GOGC=off GOMEMLIMIT=16MiB): Go's soft limit
  // does not fail allocations; collections run back to back, capped by the GC CPU limiter, and
  // the program finishes. Prints what happened; status 0.
  if (std::strcmp(c, "memlimit-below-live") == 0) {
    return gort::run([] {
      std::vector<gort::Root<gort::Array<char>>> live;  // 64 MiB live, four times the limit
      for (int i = 0; i < 64; ++i) live.emplace_back(gort::make_array<char>(size_t{1} << 20));
      size_t sum = 0;
      for (int i = 0; i < 64 * 1024; ++i) sum += gort::make_array<char>(1024)->size();  // 64 MiB churn
      gort::MemStats m;
      gort::ReadMemStats(&m);
      std::fprintf(stderr, "allocated=%zu numgc=%u gccpu=%.3f heap_alloc_mib=%llu\n", sum, m.NumGC, m.GCCPUFraction,
                   static_cast<unsigned long long>(m.HeapAlloc >> 20));
      return 0;
    });
  }
  // The runtime's lifetime (tests/test_gc.cpp): each misuse must throw std::logic_error, printed
  // as "logic_error: WHAT" with exit status 3; status 0 means it went unnoticed.
  if (std::strcmp(c, "go-without-runtime") == 0 || std::strcmp(c, "go-after-runtime") == 0 ||
      std::strcmp(c, "make-after-runtime") == 0 || std::strcmp(c, "second-runtime") == 0) {
    try {
      if (std::strcmp(c, "go-without-runtime") == 0) {
        gort::go([] {});
      } else if (std::strcmp(c, "second-runtime") == 0) {
        gort::Runtime rt;
        gort::Runtime again;
      } else {
        { gort::Runtime rt; }
        if (std::strcmp(c, "go-after-runtime") == 0) gort::go([] {});
        else gort::make<int>();
      }
      return 0;
    } catch (const std::logic_error& e) {
      std::fprintf(stderr, "logic_error: %s\n", e.what());
      return 3;
    }
  }
  // The environment as the runtime reads it at start: exit 3 when Runtime's constructor throws
  // std::invalid_argument (its message on stderr), 0 when the runtime runs.
  if (std::strcmp(c, "start") == 0) {
    try {
      gort::Runtime rt;
      gort::GC();
      return 0;
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "invalid_argument: %s\n", e.what());
      return 3;
    }
  }
  return 2;
}
