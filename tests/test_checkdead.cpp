// The deadlock check (Go's checkdead, sched/proc.cpp) and goroutine dumps on SIGQUIT, each case
// in a child process (tests/bad_input.cpp) whose exit status and stderr are checked.
#include <sys/wait.h>

#include "test_util.hpp"

TEST_CASE("sched: a deadlock ends the program with Go's message and a goroutine dump; near misses do not") {
  // Each case in a child process (tests/bad_input.cpp).
  auto [status, err] = gort_test::run_sibling("bad-input", "deadlock-goroutine");
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(err.rfind("fatal error: all goroutines are asleep - deadlock!\n\n", 0) == 0);
  CHECK(err.find("goroutine 1 [select]:") != std::string::npos);       // main, as in Go
  CHECK(err.find("goroutine 2 [chan send]:\nstuck_sender(gort::Chan<int>)\n") != std::string::npos);  // its stack
  CHECK(err.find("[sync.WaitGroup.Wait]") != std::string::npos);       // the thread under gort::run
  INFO(err);

  auto [tstatus, terr] = gort_test::run_sibling("bad-input", "deadlock-thread");
  CHECK(WEXITSTATUS(tstatus) == 2);
  CHECK(terr.find("fatal error: all goroutines are asleep - deadlock!") != std::string::npos);
  CHECK(terr.find("[chan receive]:") != std::string::npos);
  INFO(terr);

  // Something can still wake them: a timer, a goroutine inside blocking(), a thread gort does
  // not know yet (C++ programs have those): each finishes with status 0.
  for (const char* c : {"sleeper", "blocked-in-syscall", "outside-thread"}) {
    auto [s, e] = gort_test::run_sibling("bad-input", c);
    INFO(c << ": " << e);
    CHECK(s == 0);
  }

  auto [qstatus, qerr] = gort_test::run_sibling("bad-input", "sigquit");
  CHECK(WEXITSTATUS(qstatus) == 2);
  CHECK(qerr.rfind("SIGQUIT: quit\n\n", 0) == 0);
  CHECK(qerr.find("goroutine 2 [chan receive]:") != std::string::npos);
  INFO(qerr);
}
