#include "runtime/gc/typeinfo.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "runtime/core/sysmem.hpp"

namespace gort::internal {

// Index kDestroying has neither trace nor destroy, so a slot in that state is inert.
TypeInfo g_types[kMaxTypes + 1];

namespace {
std::mutex g_types_lock;
uint16_t g_ntypes = 1;  // index 0: pointer-free, trivially destructible
}  // namespace

namespace {
// The type's name out of the registering function's __PRETTY_FUNCTION__ ("... [with T = Name;
// ...]" with gcc, "... [T = Name]" with clang), for diagnostics; the whole string if neither.
const char* type_name_of(const char* pretty) {
  const char* t = std::strstr(pretty, "T = ");
  if (!t) return pretty;
  t += 4;
  size_t n = 0;
  for (int depth = 0; t[n]; ++n) {
    char c = t[n];
    if (c == '<' || c == '(' || c == '[') ++depth;
    else if ((c == '>' || c == ')') && depth > 0) --depth;
    else if (c == ']' && depth-- == 0) break;
    else if (c == ';' && depth == 0) break;
  }
  auto* name = static_cast<char*>(std::malloc(n + 1));
  if (!name) return pretty;
  std::memcpy(name, t, n);
  name[n] = 0;
  return name;  // kept for the program's life, as the type's registration is
}
}  // namespace

uint16_t register_type(TraceFn trace, DestroyFn destroy, const char* pretty_function) {
  std::lock_guard g(g_types_lock);
  if (g_ntypes >= kDestroying) fatal("more than %d managed types", kMaxTypes);
  g_types[g_ntypes] = TypeInfo{trace, destroy, type_name_of(pretty_function)};
  return g_ntypes++;
}

}  // namespace gort::internal
