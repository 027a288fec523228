#include "runtime/core/panic.hpp"

#include <stdexcept>

namespace gort::internal {

void throw_logic_error(const char* what) { throw std::logic_error(what); }
void throw_invalid_argument(const char* what) { throw std::invalid_argument(what); }

}  // namespace gort::internal
