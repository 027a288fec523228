#include "runtime/core/env.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace gort::internal {

namespace {
template <class T>
std::optional<T> parse_int(std::string_view v) {
  T n{};
  if (v.empty()) return std::nullopt;
  if (v.front() == '+') v.remove_prefix(1);
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}
}  // namespace

std::optional<int> parse_gogc(std::string_view v) {
  if (v == "off") return -1;
  auto n = parse_int<int>(v);
  if (n && *n < 0) return -1;
  return n;
}

std::optional<int64_t> parse_memory_limit(std::string_view v) {
  if (v == "off") return INT64_MAX;
  if (v.empty()) return std::nullopt;
  struct Suffix { std::string_view s; int shift; };
  static constexpr Suffix kSuffixes[] = {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}};
  int shift = 0;
  for (const auto& sfx : kSuffixes) {
    if (v.size() > sfx.s.size() && v.substr(v.size() - sfx.s.size()) == sfx.s) {
      v.remove_suffix(sfx.s.size());
      shift = sfx.shift;
      break;
    }
  }
  if (v.empty() || v.front() < '0' || v.front() > '9') return std::nullopt;
  auto n = parse_int<uint64_t>(v);
  if (!n) return std::nullopt;
  if (shift && *n > (uint64_t{INT64_MAX} >> shift)) return std::nullopt;  // overflow: malformed, as in Go
  uint64_t bytes = *n << shift;
  if (bytes > uint64_t{INT64_MAX}) return std::nullopt;
  return static_cast<int64_t>(bytes);
}

std::optional<int> parse_gomaxprocs(std::string_view v) {
  auto n = parse_int<int>(v);
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
    else spdlog::warn("gort: ignoring malformed GOGC=\"{}\"; using 100", v);
  }
  if (const char* v = getenv("GOMEMLIMIT"); v && *v) {
    auto p = parse_memory_limit(v);
    if (!p) throw std::invalid_argument(std::string("gort: malformed GOMEMLIMIT=\"") + v +
                                        "\" (want bytes with an optional B, KiB, MiB, GiB or TiB suffix, or off)");
    env.memory_limit = *p;
  }
  if (const char* v = getenv("GOMAXPROCS"); v && *v) {
    if (auto p = parse_gomaxprocs(v)) env.gomaxprocs = *p;
    else spdlog::warn("gort: ignoring malformed GOMAXPROCS=\"{}\"", v);
  }
  if (const char* v = getenv("GODEBUG"); v && *v) {
    if (auto t = godebug_value(v, "gctrace")) {
      if (auto n = parse_int<int>(*t)) env.gctrace = *n;
      else spdlog::warn("gort: ignoring malformed GODEBUG gctrace=\"{}\"", *t);
    }
  }
  return env;
}

}  // namespace gort::internal
