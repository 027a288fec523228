// Reading GOGC, GOMEMLIMIT, GOMAXPROCS and GODEBUG exactly as Go does.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gort::internal {

// GOGC: an integer percent or "off" (-1). Anything else: nullopt (Go keeps 100; gort warns).
std::optional<int> parse_gogc(std::string_view v);
// GOMEMLIMIT: bytes with an optional B, KiB, MiB, GiB or TiB suffix, or "off" (INT64_MAX).
// Malformed: nullopt (Go aborts with "malformed GOMEMLIMIT"; gort throws std::invalid_argument).
std::optional<int64_t> parse_memory_limit(std::string_view v);
// GOMAXPROCS: a positive integer; anything else is ignored (nullopt), as in Go.
std::optional<int> parse_gomaxprocs(std::string_view v);
// GODEBUG: comma-separated name=value pairs; the value of `name`, if present.
std::optional<std::string> godebug_value(std::string_view godebug, std::string_view name);

struct Environment {
  int gc_percent = 100;
  int64_t memory_limit = INT64_MAX;
  int gomaxprocs = 0;  // 0: not set
  int gctrace = 0;
  int gcstoptheworld = 0;  // GODEBUG=gcstoptheworld=1: mark with the world stopped
  int gccheckmark = 0;     // GODEBUG=gccheckmark=1: verify each concurrent mark
  int memprofilerate = -1; // GODEBUG=memprofilerate=N: MemProfileRate when the Runtime starts (-1: not set)
  int asyncpreemptoff = 0; // GODEBUG=asyncpreemptoff=1: no preemption of long-running goroutines
};
// Reads the process environment; warnings for ignored values go to stderr through spdlog.
Environment read_environment();

}  // namespace gort::internal
