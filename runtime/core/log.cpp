#include "runtime/core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <memory>

namespace gort::internal {

spdlog::logger& runtime_log() {
  static spdlog::logger* l = [] {
    auto* lg = new spdlog::logger("gort", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    lg->set_pattern("%v");
    lg->flush_on(spdlog::level::trace);
    return lg;
  }();
  return *l;
}

}  // namespace gort::internal
