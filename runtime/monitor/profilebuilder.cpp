// profile.proto writer shared by gort's profiles (design in profilebuilder.hpp).
#include "runtime/monitor/profilebuilder.hpp"

#include <zlib.h>

#include <chrono>

namespace gort::internal {

namespace {
// libgcc's frame between two stack segments (split stacks): not a call of the program's.
bool stack_switch(const std::vector<SourceFrame>& frames) {
  return frames.size() == 1 && frames[0].function.rfind("__morestack", 0) == 0;
}

// gort's own frames: its runtime (gort::internal, and code inlined from runtime/'s sources), its
// public API (gort::..., and code inlined from its headers), libgcc's stack switching and
// unwinding, the trampolines onto the M's stack and into a parked goroutine's, and the context
// switch (a goroutine's first frame). Not a goroutine's closure (GoClosure<F>::call): the
// program's function is inlined there, and without debug information it is all that names it.
bool internal_frame(const SourceFrame& f) {
  const std::string& n = f.function;
  if (function_name_starts_with(n, "gort::internal::GoClosure")) return false;
  return runtime_frame(f) || public_header_frame(f) || function_name_starts_with(n, "gort::") ||
         n.rfind("gort_call_on_stack", 0) == 0 || n.rfind("gort_unwind_parked", 0) == 0 ||
         n.rfind("__morestack", 0) == 0 || n.rfind("__generic_morestack", 0) == 0 || n.rfind("_Unwind_", 0) == 0 ||
         n.rfind("jump_fcontext", 0) == 0 || n.rfind("make_fcontext", 0) == 0;
}

std::string gzip(const std::string& data) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16 /* gzip header */, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}
}  // namespace

ProfileBuilder::ProfileBuilder() : mappings_(code_mappings()) {
  strings_.emplace(std::string(), 0);
  string_list_.emplace_back();
}

int64_t ProfileBuilder::str(const std::string& s) {
  auto [it, added] = strings_.emplace(s, static_cast<int64_t>(string_list_.size()));
  if (added) string_list_.push_back(s);
  return it->second;
}

void ProfileBuilder::value_type(int field, const char* type, const char* unit) {
  ProtoWriter v;
  v.int64(kValueTypeType, str(type));
  v.int64(kValueTypeUnit, str(unit));
  out_.message(field, v);
}

std::vector<uint64_t> ProfileBuilder::locations(const uintptr_t* stk, int n, bool all_gort_frames) {
  std::vector<uint64_t> ids;
  bool leading = true;
  for (int i = 0; i < n; ++i) {
    std::vector<SourceFrame> frames = symbolized(stk[i]);
    if (all_gort_frames) {  // gort's frames out of every address's chain of inlined calls
      std::vector<SourceFrame> kept;
      for (const SourceFrame& f : frames)
        if (!internal_frame(f)) kept.push_back(f);
      if (kept.empty()) continue;
      ids.push_back(location(stk[i], kept.size() < frames.size(), kept));
    } else if (leading) {
      size_t k = 0;
      while (k < frames.size() && internal_frame(frames[k])) ++k;  // innermost first
      if (k == frames.size()) continue;                           // all of this address is gort's
      leading = false;
      ids.push_back(location(stk[i], k > 0, std::vector<SourceFrame>(frames.begin() + static_cast<long>(k), frames.end())));
    } else if (!stack_switch(frames)) {
      ids.push_back(location(stk[i], false, frames));
    }
  }
  return ids;
}

void ProfileBuilder::sample(const std::vector<uint64_t>& locs, const std::vector<int64_t>& values, int64_t bytes,
                            const std::pair<const char*, const char*>* label) {
  ProtoWriter s;
  s.packed(kSampleLocationId, locs);
  s.packed(kSampleValue, values);
  if (bytes) {
    ProtoWriter l;
    l.int64(kLabelKey, str("bytes"));
    l.int64(kLabelNum, bytes);
    s.message(kSampleLabel, l);
  }
  if (label) {
    ProtoWriter l;
    l.int64(kLabelKey, str(label->first));
    l.int64(kLabelStr, str(label->second));
    s.message(kSampleLabel, l);
  }
  out_.message(kProfileSample, s);
}

void ProfileBuilder::time_and_period(const char* type, const char* unit, int64_t period) {
  out_.int64(kProfileTimeNanos,
             std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  value_type(kProfilePeriodType, type, unit);
  out_.int64(kProfilePeriod, period);
}

std::string ProfileBuilder::finish_gzipped() {
  for (size_t i = 0; i < mappings_.size(); ++i) {
    const CodeMapping& m = mappings_[i];
    ProtoWriter w;
    w.uint64(kMappingId, i + 1);
    w.uint64(kMappingStart, m.start);
    w.uint64(kMappingLimit, m.limit);
    w.uint64_opt(kMappingOffset, m.file_offset);
    w.int64(kMappingFilename, str(m.file));
    w.int64_opt(kMappingBuildId, str(m.build_id));
    w.boolean(kMappingHasFunctions, true);
    w.boolean(kMappingHasFilenames, has_files_);
    w.boolean(kMappingHasLineNumbers, has_files_);
    w.boolean(kMappingHasInlineFrames, has_files_);
    out_.message(kProfileMapping, w);
  }
  for (const ProtoWriter& l : location_msgs_) out_.message(kProfileLocation, l);
  for (const ProtoWriter& f : function_msgs_) out_.message(kProfileFunction, f);
  for (const std::string& s : string_list_) out_.bytes(kProfileStringTable, s);
  return gzip(out_.data());
}

const std::vector<SourceFrame>& ProfileBuilder::symbolized(uintptr_t pc) {
  auto it = symbols_.find(pc);
  if (it == symbols_.end()) it = symbols_.emplace(pc, symbolize_return_address(pc)).first;
  return it->second;
}

uint64_t ProfileBuilder::mapping_of(uintptr_t pc) {
  for (size_t i = 0; i < mappings_.size(); ++i)
    if (pc >= mappings_[i].start && pc < mappings_[i].limit) return i + 1;
  return 0;
}

uint64_t ProfileBuilder::function(const SourceFrame& f) {
  std::string name = f.function.empty() ? "??" : f.function;
  auto key = std::make_pair(name, f.file);
  auto it = functions_.find(key);
  if (it != functions_.end()) return it->second;
  uint64_t id = function_msgs_.size() + 1;
  ProtoWriter w;
  w.uint64(kFunctionId, id);
  w.int64(kFunctionName, str(name));
  w.int64(kFunctionSystemName, str(f.system_name.empty() ? name : f.system_name));
  w.int64_opt(kFunctionFilename, str(f.file));
  function_msgs_.push_back(std::move(w));
  functions_.emplace(std::move(key), id);
  return id;
}

// One location per address (and per trimmed form of it).
uint64_t ProfileBuilder::location(uintptr_t pc, bool trimmed, const std::vector<SourceFrame>& frames) {
  auto key = std::make_pair(pc, trimmed);
  auto it = locations_.find(key);
  if (it != locations_.end()) return it->second;
  uint64_t id = location_msgs_.size() + 1;
  ProtoWriter w;
  w.uint64(kLocationId, id);
  w.uint64_opt(kLocationMappingId, mapping_of(pc));
  w.uint64(kLocationAddress, pc - 1);  // the call, as the lines describe it
  for (const SourceFrame& f : frames) {  // innermost first, as profile.proto orders them
    ProtoWriter line;
    line.uint64(kLineFunctionId, function(f));
    line.int64_opt(kLineLine, f.line);
    if (!f.file.empty()) has_files_ = true;
    w.message(kLocationLine, line);
  }
  location_msgs_.push_back(std::move(w));
  locations_.emplace(key, id);
  return id;
}

}  // namespace gort::internal
