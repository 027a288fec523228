// pprof::WriteHeapProfile: the heap profiler's buckets (stats/mprof.hpp) as Go's
// writeHeapProto writes them: profile.proto with the sample types alloc_objects/count,
// alloc_space/bytes, inuse_objects/count, inuse_space/bytes, period type space/bytes and period
// MemProfileRate, each sample's counts scaled up by Go's scaleHeapSample and labelled with its
// object size ("bytes"), then gzipped (zlib).
//
// Unlike Go, the locations come symbolized (profile.proto's functions and lines, mappings marked
// has_functions): a C++ binary's symbols are read here, where the binary is, with libbacktrace.
// The frames of gort's own allocation path (gort::..., libgcc's __morestack) are left out at the
// top of each stack, as Go leaves out mallocgc: the first frame is the code that allocated; the
// __morestack frames where a stack crossed into a new segment are left out everywhere.
#include <gort/pprof.hpp>

#include <zlib.h>

#include <chrono>
#include <cmath>
#include <map>
#include <ostream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/monitor/protobuf.hpp"
#include "runtime/core/symbolize.hpp"
#include "runtime/stats/mprof.hpp"

namespace gort::pprof {

namespace {

using internal::ProfileBucket;
using internal::ProtoWriter;
using internal::SourceFrame;

// profile.proto field numbers.
enum : int {
  kProfileSampleType = 1, kProfileSample = 2, kProfileMapping = 3, kProfileLocation = 4,
  kProfileFunction = 5, kProfileStringTable = 6, kProfileTimeNanos = 9, kProfilePeriodType = 11,
  kProfilePeriod = 12,
  kValueTypeType = 1, kValueTypeUnit = 2,
  kSampleLocationId = 1, kSampleValue = 2, kSampleLabel = 3,
  kLabelKey = 1, kLabelNum = 3, kLabelNumUnit = 4,
  kMappingId = 1, kMappingStart = 2, kMappingLimit = 3, kMappingOffset = 4, kMappingFilename = 5,
  kMappingBuildId = 6, kMappingHasFunctions = 7, kMappingHasFilenames = 8, kMappingHasLineNumbers = 9,
  kMappingHasInlineFrames = 10,
  kLocationId = 1, kLocationMappingId = 2, kLocationAddress = 3, kLocationLine = 4,
  kLineFunctionId = 1, kLineLine = 2,
  kFunctionId = 1, kFunctionName = 2, kFunctionSystemName = 3, kFunctionFilename = 4,
};

// Go's scaleHeapSample: a sampled record of `count` objects and `size` bytes stands for
// count / (1 - exp(-avg / rate)) allocations of average size avg.
std::pair<int64_t, int64_t> scale(uint64_t count, uint64_t size, int rate) {
  if (count == 0 || size == 0) return {0, 0};
  if (rate <= 1) return {static_cast<int64_t>(count), static_cast<int64_t>(size)};
  double avg = static_cast<double>(size) / static_cast<double>(count);
  double s = 1 / (1 - std::exp(-avg / rate));
  return {static_cast<int64_t>(static_cast<double>(count) * s), static_cast<int64_t>(static_cast<double>(size) * s)};
}

// libgcc's frame between two stack segments (split stacks): not a call of the program's.
bool stack_switch(const std::vector<SourceFrame>& frames) {
  return frames.size() == 1 && frames[0].function.rfind("__morestack", 0) == 0;
}

// gort's own frames: its runtime (gort::internal, and code inlined from runtime/'s sources), its
// public API (gort::..., and code inlined from its headers), libgcc's stack switching and
// unwinding, and the trampoline onto the M's stack.
bool internal_frame(const SourceFrame& f) {
  const std::string& n = f.function;
  return internal::runtime_frame(f) || internal::public_header_frame(f) ||
         internal::function_name_starts_with(n, "gort::") || n.rfind("gort_call_on_stack", 0) == 0 ||
         n.rfind("__morestack", 0) == 0 || n.rfind("__generic_morestack", 0) == 0 || n.rfind("_Unwind_", 0) == 0;
}

class Builder {
 public:
  Builder() { strings_.emplace(std::string(), 0); string_list_.emplace_back(); }

  int64_t str(const std::string& s) {
    auto [it, added] = strings_.emplace(s, static_cast<int64_t>(string_list_.size()));
    if (added) string_list_.push_back(s);
    return it->second;
  }

  void value_type(int field, const char* type, const char* unit) {
    ProtoWriter v;
    v.int64(kValueTypeType, str(type));
    v.int64(kValueTypeUnit, str(unit));
    out_.message(field, v);
  }

  // The location ids of a bucket's stack, gort's own leading frames left out.
  std::vector<uint64_t> locations(const ProfileBucket* b) {
    std::vector<uint64_t> ids;
    bool leading = true;
    for (int i = 0; i < b->nstk; ++i) {
      std::vector<SourceFrame> frames = symbolized(b->stk[i]);
      if (leading) {
        size_t k = 0;
        while (k < frames.size() && internal_frame(frames[k])) ++k;  // innermost first
        if (k == frames.size()) continue;  // all of this address is gort's
        leading = false;
        ids.push_back(location(b->stk[i], k > 0, std::vector<SourceFrame>(frames.begin() + static_cast<long>(k), frames.end())));
      } else if (!stack_switch(frames)) {
        ids.push_back(location(b->stk[i], false, frames));
      }
    }
    return ids;
  }

  void sample(const std::vector<uint64_t>& locs, const std::vector<int64_t>& values, int64_t bytes) {
    ProtoWriter s;
    s.packed(kSampleLocationId, locs);
    s.packed(kSampleValue, values);
    if (bytes) {
      ProtoWriter label;
      label.int64(kLabelKey, str("bytes"));
      label.int64(kLabelNum, bytes);
      s.message(kSampleLabel, label);
    }
    out_.message(kProfileSample, s);
  }

  ProtoWriter& out() { return out_; }

  // Mappings, locations, functions and the string table: after the samples (they are only
  // known once every stack was walked).
  std::string finish() {
    for (size_t i = 0; i < mappings_.size(); ++i) {
      const internal::CodeMapping& m = mappings_[i];
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
    return out_.data();
  }

 private:
  const std::vector<SourceFrame>& symbolized(uintptr_t pc) {
    auto it = symbols_.find(pc);
    if (it == symbols_.end()) it = symbols_.emplace(pc, internal::symbolize_return_address(pc)).first;
    return it->second;
  }

  uint64_t mapping_of(uintptr_t pc) {
    for (size_t i = 0; i < mappings_.size(); ++i)
      if (pc >= mappings_[i].start && pc < mappings_[i].limit) return i + 1;
    return 0;
  }

  uint64_t function(const SourceFrame& f) {
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
  uint64_t location(uintptr_t pc, bool trimmed, const std::vector<SourceFrame>& frames) {
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

  ProtoWriter out_;
  std::unordered_map<std::string, int64_t> strings_;
  std::vector<std::string> string_list_;
  std::vector<internal::CodeMapping> mappings_ = internal::code_mappings();
  std::unordered_map<uintptr_t, std::vector<SourceFrame>> symbols_;
  std::map<std::pair<uintptr_t, bool>, uint64_t> locations_;
  std::map<std::pair<std::string, std::string>, uint64_t> functions_;
  std::vector<ProtoWriter> location_msgs_, function_msgs_;
  bool has_files_ = false;
};

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

// Go's MemProfile: a profile read before any collection has nothing published yet; then every
// cycle's pending counts are published, so a program that never collected still gets a profile.
void publish_if_nothing_published() {
  bool any = false;
  internal::for_each_profile_bucket([&](ProfileBucket* b) {
    if (b->active.allocs.load(std::memory_order_relaxed) || b->active.frees.load(std::memory_order_relaxed)) any = true;
  });
  if (any) return;
  internal::for_each_profile_bucket([](ProfileBucket* b) {
    for (auto& f : b->future) {
      b->active.allocs.fetch_add(f.allocs.exchange(0), std::memory_order_relaxed);
      b->active.frees.fetch_add(f.frees.exchange(0), std::memory_order_relaxed);
      b->active.alloc_bytes.fetch_add(f.alloc_bytes.exchange(0), std::memory_order_relaxed);
      b->active.free_bytes.fetch_add(f.free_bytes.exchange(0), std::memory_order_relaxed);
    }
  });
}

}  // namespace

void WriteHeapProfile(std::ostream& out) {
  int rate = std::atomic_ref<int>(MemProfileRate).load(std::memory_order_relaxed);
  Builder b;
  b.value_type(kProfileSampleType, "alloc_objects", "count");
  b.value_type(kProfileSampleType, "alloc_space", "bytes");
  b.value_type(kProfileSampleType, "inuse_objects", "count");
  b.value_type(kProfileSampleType, "inuse_space", "bytes");
  publish_if_nothing_published();
  internal::for_each_profile_bucket([&](ProfileBucket* bk) {
    uint64_t allocs = bk->active.allocs.load(std::memory_order_relaxed);
    uint64_t frees = bk->active.frees.load(std::memory_order_relaxed);
    uint64_t alloc_bytes = bk->active.alloc_bytes.load(std::memory_order_relaxed);
    uint64_t free_bytes = bk->active.free_bytes.load(std::memory_order_relaxed);
    if (allocs == 0) return;  // sampled, but not published yet
    auto [ao, ab] = scale(allocs, alloc_bytes, rate);
    auto [io, ib] = scale(allocs - frees, alloc_bytes - free_bytes, rate);
    b.sample(b.locations(bk), {ao, ab, io, ib}, static_cast<int64_t>(alloc_bytes / allocs));
  });
  b.out().int64(kProfileTimeNanos,
                std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  b.value_type(kProfilePeriodType, "space", "bytes");
  b.out().int64(kProfilePeriod, rate);
  std::string gz = gzip(b.finish());
  if (gz.empty()) {
    out.setstate(std::ios::badbit);
    return;
  }
  out.write(gz.data(), static_cast<std::streamsize>(gz.size()));
}

}  // namespace gort::pprof
