#include "runtime/core/symbolize.hpp"

#include <backtrace.h>
#include <cxxabi.h>
#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace gort::internal {

namespace {

backtrace_state* state() {
  // One state for the process, never freed (libbacktrace's design): it caches what it read.
  static backtrace_state* s = backtrace_create_state(nullptr, /*threaded=*/1, [](void*, const char*, int) {}, nullptr);
  return s;
}

std::string demangle(const char* name) {
  if (!name) return {};
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || !d) return name;  // a C name, or not a mangled one
  std::string out(d);
  std::free(d);
  return out;
}

int on_line(void* data, uintptr_t, const char* file, int line, const char* function) {
  if (!function) return 0;  // no debug information for this address
  SourceFrame f;
  f.system_name = function;
  f.function = demangle(function);
  f.file = file ? file : "";
  f.line = line;
  static_cast<std::vector<SourceFrame>*>(data)->push_back(std::move(f));
  return 0;
}

void on_symbol(void* data, uintptr_t, const char* name, uintptr_t, uintptr_t) {
  if (!name) return;
  SourceFrame f;
  f.system_name = name;
  f.function = demangle(name);
  static_cast<std::vector<SourceFrame>*>(data)->push_back(std::move(f));
}

void ignore_error(void*, const char*, int) {}

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

std::string build_id(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + ((n->n_namesz + 3) & ~3u);
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0)
        return hex(desc, n->n_descsz);
      p = desc + ((n->n_descsz + 3) & ~3u);
    }
  }
  return {};
}

}  // namespace

std::vector<SourceFrame> symbolize_return_address(uintptr_t pc) {
  std::vector<SourceFrame> frames;
  uintptr_t call = pc - 1;  // inside the call instruction, not after it
  backtrace_pcinfo(state(), call, on_line, ignore_error, &frames);
  // DWARF names functions without their namespaces and classes ("make<Node>"); the symbol
  // table has the qualified name of the function that contains the address (inlined frames
  // keep DWARF's).
  std::vector<SourceFrame> symbol;
  backtrace_syminfo(state(), call, on_symbol, ignore_error, &symbol);
  if (frames.empty()) frames = std::move(symbol);
  else if (!symbol.empty()) {
    frames.back().function = std::move(symbol[0].function);
    frames.back().system_name = std::move(symbol[0].system_name);
  }
  if (frames.empty()) frames.emplace_back();
  return frames;
}

CodeSymbol symbol_containing(uintptr_t pc) {
  CodeSymbol sym;
  backtrace_syminfo(
      state(), pc,
      [](void* data, uintptr_t, const char* name, uintptr_t start, uintptr_t size) {
        if (!name) return;
        auto* s = static_cast<CodeSymbol*>(data);
        s->name = name;
        s->start = start;
        s->size = size;
      },
      ignore_error, &sym);
  return sym;
}

std::string demangle_name(const std::string& name) { return demangle(name.c_str()); }

bool function_name_starts_with(const std::string& name, std::string_view prefix) {
  if (name.rfind(prefix, 0) == 0) return true;
  size_t args = name.find('(');
  for (size_t p = name.find(' '); p != std::string::npos && p < args; p = name.find(' ', p + 1))
    if (name.compare(p + 1, prefix.size(), prefix) == 0) return true;
  return false;
}

namespace {
// The file's path from its last "<dir>/" component on ("runtime/gc/mgc.cpp" -> "gc/mgc.cpp"
// after "runtime/"), or "" when it has none.
std::string_view after_dir(const std::string& file, std::string_view dir) {
  size_t p = file.rfind(dir);
  if (p == std::string::npos || (p > 0 && file[p - 1] != '/')) return {};
  return std::string_view(file).substr(p + dir.size());
}
}  // namespace

bool runtime_frame(const SourceFrame& f) {
  if (function_name_starts_with(f.function, "gort::internal::")) return true;
  std::string_view rest = after_dir(f.file, "runtime/");
  for (std::string_view sub : {"alloc/", "core/", "gc/", "sched/", "stats/", "monitor/"})
    if (rest.rfind(sub, 0) == 0) return true;
  return false;
}

bool public_header_frame(const SourceFrame& f) {
  std::string_view rest = after_dir(f.file, "gort/");
  return !rest.empty() && rest.find('/') == std::string_view::npos && rest.size() > 4 &&
         rest.substr(rest.size() - 4) == ".hpp";
}

std::vector<CodeMapping> code_mappings() {
  std::vector<CodeMapping> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* maps = static_cast<std::vector<CodeMapping>*>(data);
        std::string file = info->dlpi_name ? info->dlpi_name : "";
        if (file.empty()) {  // the program itself
          char exe[PATH_MAX];
          ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
          if (n > 0) file.assign(exe, static_cast<size_t>(n));
        }
        if (file.find("linux-vdso") != std::string::npos) return 0;
        std::string id = build_id(info);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          maps->push_back(CodeMapping{start, start + ph.p_memsz, ph.p_offset, file, id});
        }
        return 0;
      },
      &out);
  return out;
}

}  // namespace gort::internal
