// Go's panics for API misuse, as C++ exceptions (the contract's std::logic_error and
// std::invalid_argument). They are thrown from these out-of-line functions rather than in place:
// a throw is a call into libstdc++, which with split stacks makes the calling function ask for a
// 1 MiB stack segment each time it runs (core/mem.hpp); here only the throwing path pays it.
#pragma once

namespace gort::internal {

[[noreturn]] void throw_logic_error(const char* what);
[[noreturn]] void throw_invalid_argument(const char* what);

}  // namespace gort::internal
