// The C and C++ runtime functions gort defines in front of libc's, libgcc_s's and libstdc++'s on
// split stacks (cxxcall.cpp, which explains why), named in one place: cxxcall.cpp forwards the
// ones it forwards by these names, and the preemption classifier (preempt.cpp) never preempts
// any of them (nor a program's own replacement of one).
#pragma once
#include <string_view>

namespace gort::internal {

// What cxxcall.cpp forwards to the next definition (dlsym RTLD_NEXT), in the order of its
// table of next definitions (its NextIndex).
inline constexpr std::string_view kForwardedNames[] = {"_Unwind_Resume", "memcpy", "memmove",   "memset",
                                                       "memcmp",         "strlen", "vsnprintf", "bcmp"};

// True for the mangled name of a function gort stands in for: the forwarded ones, snprintf,
// every replaceable operator new and delete, libstdc++'s std::__throw_* helpers.
constexpr bool stand_in_symbol(std::string_view mangled) {
  for (std::string_view name : kForwardedNames)
    if (mangled == name) return true;
  if (mangled == "snprintf") return true;
  for (std::string_view p : {"_Znw", "_Zna", "_Zdl", "_Zda"})  // operator new, new[], delete, delete[]
    if (mangled.substr(0, p.size()) == p) return true;
  return mangled.substr(0, 4) == "_ZSt" && mangled.find("__throw_") != std::string_view::npos;
}

}  // namespace gort::internal
