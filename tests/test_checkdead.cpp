// The deadlock check (Go's checkdead, sched/proc.cpp) and goroutine dumps on SIGQUIT, each case
// in a child process (tests/bad_input.cpp) whose exit status and stderr are checked.
#include <sys/wait.h>

#include "runtime/core/sanitizer.hpp"
#include "test_util.hpp"

// Not under ThreadSanitizer: its runtime runs a thread of its own, which gort cannot tell from a
// program thread that might still wake someone, so the check (rightly) never reports there.
TEST_CASE("sched: a deadlock ends the program with Go's message and a goroutine dump; near misses do not" *
          doctest::skip(gort::internal::kThreadSanitizer)) {
  // Each case in a child process (tests/bad_input.cpp).
  // (Pairs, not structured bindings: clang 14 cannot capture those in INFO's lambda.)
  std::pair<int, std::string> dead = gort_test::run_sibling("bad-input", "deadlock-goroutine");
  int status = dead.first;
  const std::string& err = dead.second;
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(err.rfind("fatal error: all goroutines are asleep - deadlock!\n\n", 0) == 0);
  CHECK(err.find("goroutine 1 [select]:") != std::string::npos);       // main, as in Go
  // Goroutine 2's stack (with debug information, gort::Chan<int>::send, inlined, comes first).
  size_t g2 = err.find("goroutine 2 [chan send]:\n");
  REQUIRE(g2 != std::string::npos);
  std::string g2_stack = err.substr(g2, err.find("\n\n", g2) - g2);
  CHECK(g2_stack.find("\nstuck_sender(gort::Chan<int>)\n") != std::string::npos);
  CHECK(err.find("[sync.WaitGroup.Wait]") != std::string::npos);       // the thread under gort::run
  INFO(err);

  std::pair<int, std::string> thread = gort_test::run_sibling("bad-input", "deadlock-thread");
  int tstatus = thread.first;
  const std::string& terr = thread.second;
  CHECK(WEXITSTATUS(tstatus) == 2);
  CHECK(terr.find("fatal error: all goroutines are asleep - deadlock!") != std::string::npos);
  CHECK(terr.find("[chan receive]:") != std::string::npos);
  INFO(terr);

  // Something can still wake them: a timer, a goroutine inside blocking(), a thread gort does
  // not know yet (C++ programs have those): each finishes with status 0.
  for (const char* c : {"sleeper", "blocked-in-syscall", "outside-thread"}) {
    std::pair<int, std::string> run = gort_test::run_sibling("bad-input", c);
    int s = run.first;
    const std::string& e = run.second;
    INFO(c << ": " << e);
    CHECK(s == 0);
  }

  std::pair<int, std::string> quit = gort_test::run_sibling("bad-input", "sigquit");
  int qstatus = quit.first;
  const std::string& qerr = quit.second;
  CHECK(WEXITSTATUS(qstatus) == 2);
  CHECK(qerr.rfind("SIGQUIT: quit\n\n", 0) == 0);
  CHECK(qerr.find("goroutine 2 [chan receive]:") != std::string::npos);
  INFO(qerr);
}
