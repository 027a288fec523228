// profile.proto, as pprof reads it: the writer shared by gort's profiles (heap, goroutine).
//
// A ProfileBuilder collects samples (each a stack of return addresses and its values), then
// writes the mappings, locations, functions and string table the samples refer to. Locations come
// symbolized (functions and lines, mappings marked has_functions): a C++ binary's symbols are read
// here, where the binary is, with libbacktrace (core/symbolize.hpp). gort's own frames are left
// out at the top of each stack (Go leaves out mallocgc and gopark the same way), and libgcc's
// __morestack frames between stack segments everywhere.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/symbolize.hpp"
#include "runtime/monitor/protobuf.hpp"

namespace gort::internal {

// profile.proto field numbers.
enum : int {
  kProfileSampleType = 1, kProfileSample = 2, kProfileMapping = 3, kProfileLocation = 4,
  kProfileFunction = 5, kProfileStringTable = 6, kProfileTimeNanos = 9, kProfilePeriodType = 11,
  kProfilePeriod = 12,
  kValueTypeType = 1, kValueTypeUnit = 2,
  kSampleLocationId = 1, kSampleValue = 2, kSampleLabel = 3,
  kLabelKey = 1, kLabelStr = 2, kLabelNum = 3, kLabelNumUnit = 4,
  kMappingId = 1, kMappingStart = 2, kMappingLimit = 3, kMappingOffset = 4, kMappingFilename = 5,
  kMappingBuildId = 6, kMappingHasFunctions = 7, kMappingHasFilenames = 8, kMappingHasLineNumbers = 9,
  kMappingHasInlineFrames = 10,
  kLocationId = 1, kLocationMappingId = 2, kLocationAddress = 3, kLocationLine = 4,
  kLineFunctionId = 1, kLineLine = 2,
  kFunctionId = 1, kFunctionName = 2, kFunctionSystemName = 3, kFunctionFilename = 4,
};

class ProfileBuilder {
 public:
  ProfileBuilder();
  int64_t str(const std::string& s);
  void value_type(int field, const char* type, const char* unit);
  // The location ids of a stack (return addresses, innermost first), gort's own leading frames
  // left out; with `all_gort_frames`, gort's frames anywhere, inlined ones included (a
  // goroutine's entry, gort::go's wrapper). One builder uses one of the two forms.
  std::vector<uint64_t> locations(const uintptr_t* stk, int n, bool all_gort_frames = false);
  // A sample; `bytes` > 0 adds the heap profile's "bytes" label, `label` a string label
  // (key, value) when not null.
  void sample(const std::vector<uint64_t>& locs, const std::vector<int64_t>& values, int64_t bytes = 0,
              const std::pair<const char*, const char*>* label = nullptr);
  ProtoWriter& out() { return out_; }
  // The profile's time (now) and period; then finish().
  void time_and_period(const char* type, const char* unit, int64_t period);
  // Mappings, locations, functions and the string table (known once every stack was walked):
  // the whole profile, gzipped; empty if compressing failed.
  std::string finish_gzipped();

 private:
  const std::vector<SourceFrame>& symbolized(uintptr_t pc);
  uint64_t mapping_of(uintptr_t pc);
  uint64_t function(const SourceFrame& f);
  uint64_t location(uintptr_t pc, bool trimmed, const std::vector<SourceFrame>& frames);

  ProtoWriter out_;
  std::unordered_map<std::string, int64_t> strings_;
  std::vector<std::string> string_list_;
  std::vector<CodeMapping> mappings_;
  std::unordered_map<uintptr_t, std::vector<SourceFrame>> symbols_;
  std::map<std::pair<uintptr_t, bool>, uint64_t> locations_;
  std::map<std::pair<std::string, std::string>, uint64_t> functions_;
  std::vector<ProtoWriter> location_msgs_, function_msgs_;
  bool has_files_ = false;
};

}  // namespace gort::internal
