// Code addresses to C++ function names, files and lines, for heap profiles and goroutine dumps, with
// libbacktrace (gcc's, the library behind gcc's own sanitizer reports): DWARF line tables and
// inlined frames when the binary has debug information, else the ELF symbol table. Names are
// demangled with the C++ ABI's __cxa_demangle.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gort::internal {

struct SourceFrame {
  // Demangled ("ns::tree(int)"), or "" when unknown. An inlined frame has DWARF's name, without
  // namespaces or classes ("make<Node>").
  std::string function;
  std::string system_name;  // as in the binary (mangled)
  std::string file;         // "" without debug information
  int64_t line = 0;
};

// The frames of the call at return address pc (symbolized at pc - 1): the innermost (inlined)
// first, the function that contains pc last. Never empty: an unknown address gives one frame
// with empty names.
std::vector<SourceFrame> symbolize_return_address(uintptr_t pc);

// Whether a demangled function name starts with `prefix` ("gort::internal::"), after the return
// type that demangled function template names carry ("void gort::internal::f<int>(int)").
bool function_name_starts_with(const std::string& name, std::string_view prefix);

// A frame of gort's runtime: a gort::internal function, or code inlined from runtime/'s sources
// (DWARF names inlined code without namespaces: "operator()", "on_system_stack<...>").
bool runtime_frame(const SourceFrame& f);
// Code inlined from gort's public headers (include/gort/*.hpp: make<T>, Chan<T>::send, ...).
bool public_header_frame(const SourceFrame& f);

// The symbol-table entry whose function contains pc (not a return address): its mangled name,
// start and size; an empty name when no symbol covers it (a stripped binary).
struct CodeSymbol {
  std::string name;
  uintptr_t start = 0, size = 0;
};
CodeSymbol symbol_containing(uintptr_t pc);
// A mangled name, demangled (the name itself when it is not a C++ one).
std::string demangle_name(const std::string& name);

// The executable mappings of the process (the program and its shared libraries), for
// profile.proto's mapping table.
struct CodeMapping {
  uintptr_t start, limit;
  uint64_t file_offset;
  std::string file;
  std::string build_id;  // hex, "" if the object has none
};
std::vector<CodeMapping> code_mappings();

}  // namespace gort::internal
