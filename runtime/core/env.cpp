#include "runtime/core/env.hpp"

#include "runtime/core/log.hpp"

#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace gort::internal {

namespace {
// Go's runtime atoi64: an optional '-', then decimal digits; no '+', no spaces; overflow fails.
std::optional<int64_t> atoi64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool neg = s.front() == '-';
  if (neg) s.remove_prefix(1);
  // As in Go, a lone "-" reads as 0.
  uint64_t un = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (un > UINT64_MAX / 10) return std::nullopt;
    uint64_t next = un * 10 + static_cast<uint64_t>(c - '0');
    if (next < un) return std::nullopt;
    un = next;
  }
  if (!neg && un > uint64_t{INT64_MAX}) return std::nullopt;
  if (neg && un > uint64_t{INT64_MAX} + 1) return std::nullopt;
  return neg ? static_cast<int64_t>(0 - un) : static_cast<int64_t>(un);
}

// Go's atoi32: atoi64 within int32's range.
std::optional<int> atoi32(std::string_view s) {
  auto n = atoi64(s);
  if (!n || *n < INT32_MIN || *n > INT32_MAX) return std::nullopt;
  return static_cast<int>(*n);
}
}  // namespace

std::optional<int> parse_gogc(std::string_view v) {
  if (v == "off") return -1;
  auto n = atoi32(v);
  if (n && *n < 0) return -1;  // any negative percent disables the collector (setGCPercent's rule)
  return n;
}

// Go's parseByteCount, step by step.
std::optional<int64_t> parse_memory_limit(std::string_view v) {
  if (v == "off") return INT64_MAX;
  if (v.empty()) return std::nullopt;
  auto non_negative = [](std::optional<int64_t> n) -> std::optional<int64_t> {
    if (!n || *n < 0) return std::nullopt;
    return n;
  };
  char last = v.back();
  if (last >= '0' && last <= '9') return non_negative(atoi64(v));
  if (last != 'B' || v.size() < 2) return std::nullopt;
  char c = v[v.size() - 2];
  if (c >= '0' && c <= '9') return non_negative(atoi64(v.substr(0, v.size() - 1)));
  if (c != 'i' || v.size() < 4) return std::nullopt;
  int power;
  switch (v[v.size() - 3]) {
    case 'K': power = 1; break;
    case 'M': power = 2; break;
    case 'G': power = 3; break;
    case 'T': power = 4; break;
    default: return std::nullopt;
  }
  uint64_t m = uint64_t{1} << (10 * power);
  auto n = non_negative(atoi64(v.substr(0, v.size() - 3)));
  if (!n) return std::nullopt;
  uint64_t un = static_cast<uint64_t>(*n);
  if (un > UINT64_MAX / m) return std::nullopt;
  un *= m;
  if (un > uint64_t{INT64_MAX}) return std::nullopt;
  return static_cast<int64_t>(un);
}

std::optional<int> parse_gomaxprocs(std::string_view v) {
  auto n = atoi32(v);
  if (n && *n > 0) return n;
  return std::nullopt;
}

std::optional<std::string> godebug_value(std::string_view godebug, std::string_view name) {
  std::optional<std::string> found;
  while (!godebug.empty()) {
    size_t comma = godebug.find(',');
    std::string_view kv = godebug.substr(0, comma);
    godebug = comma == std::string_view::npos ? std::string_view{} : godebug.substr(comma + 1);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == name) found = std::string(kv.substr(eq + 1));  // last wins
  }
  return found;
}

Environment read_environment() {
  Environment env;
  if (const char* v = getenv("GOGC"); v && *v) {
    if (auto p = parse_gogc(v)) env.gc_percent = *p;
    else runtime_log().warn("gort: ignoring malformed GOGC=\"{}\"; using 100", v);
  }
  if (const char* v = getenv("GOMEMLIMIT"); v && *v) {
    auto p = parse_memory_limit(v);
    if (!p) throw std::invalid_argument(std::string("gort: malformed GOMEMLIMIT=\"") + v +
                                        "\" (want bytes with an optional B, KiB, MiB, GiB or TiB suffix, or off)");
    env.memory_limit = *p;
  }
  if (const char* v = getenv("GOMAXPROCS"); v && *v) {
    if (auto p = parse_gomaxprocs(v)) env.gomaxprocs = *p;
    else runtime_log().warn("gort: ignoring malformed GOMAXPROCS=\"{}\"", v);
  }
  if (const char* v = getenv("GODEBUG"); v && *v) {
    for (auto [name, field] : {std::pair{"gctrace", &env.gctrace}, std::pair{"gcstoptheworld", &env.gcstoptheworld},
                               std::pair{"gccheckmark", &env.gccheckmark},
                               std::pair{"memprofilerate", &env.memprofilerate},
                               std::pair{"asyncpreemptoff", &env.asyncpreemptoff}}) {
      if (auto t = godebug_value(v, name)) {
        if (auto n = atoi32(*t)) *field = *n;
        else runtime_log().warn("gort: ignoring malformed GODEBUG {}=\"{}\"", name, *t);
      }
    }
  }
  return env;
}

}  // namespace gort::internal
