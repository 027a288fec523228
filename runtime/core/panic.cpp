#include "runtime/core/panic.hpp"

#include <cstdio>
#include <stdexcept>

#include <gort/heap.hpp>

namespace gort::internal {

void throw_logic_error(const char* what) { throw std::logic_error(what); }
void throw_invalid_argument(const char* what) { throw std::invalid_argument(what); }
void throw_len_out_of_range(size_t n, size_t elem_size) {
  char what[128];
  std::snprintf(what, sizeof what, "gort::make_array: len out of range (%zu elements of %zu bytes)", n, elem_size);
  throw std::length_error(what);
}

}  // namespace gort::internal
