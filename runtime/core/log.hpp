// The runtime's stderr log (spdlog): gctrace lines and warnings about ignored settings, printed
// as they are, one line each, like Go's runtime prints to stderr.
#pragma once
#include <spdlog/logger.h>

namespace gort::internal {
spdlog::logger& runtime_log();
}  // namespace gort::internal
