// pprof::WriteGoroutineProfile: Go's goroutine profile (pprof.Lookup("goroutine").WriteTo(w, 0)):
// profile.proto with the sample type goroutine/count and period 1, one sample per distinct stack
// whose value is the number of goroutines with that stack, gzipped.
//
// The stacks are those of sched's for_each_goroutine: every switched-out goroutine's (parked or
// runnable), the caller's own, and each running goroutine's, its thread stopped alone for the
// walk (Go stops the world for the profile), each from its first frame that is not gort's (Go
// shows runtime.gopark and the channel code on top; C++ users see their own call). A goroutine
// whose stack could not be walked (it moved on while its thread was being stopped) is counted in
// a sample without a stack, labelled with its state.
#include <gort/pprof.hpp>

#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/monitor/profilebuilder.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::pprof {

void WriteGoroutineProfile(std::ostream& out) {
  std::string gz;
  internal::on_system_stack([&] {  // the unwinder and libstdc++: off a goroutine's small stack
    internal::ProfileBuilder b;
    b.value_type(internal::kProfileSampleType, "goroutine", "count");
    std::map<std::vector<uint64_t>, int64_t> stacks;  // location ids -> goroutines
    std::map<std::string, int64_t> elsewhere;  // state -> goroutines running on other threads
    internal::for_each_goroutine([&](const internal::GoroutineRecord& g) {
      if (g.n == 0) ++elsewhere[g.state];
      else ++stacks[b.locations(g.pcs, g.n, /*all_gort_frames=*/true)];
    });
    for (const auto& [locs, count] : stacks) b.sample(locs, {count});
    for (const auto& [state, count] : elsewhere) {
      std::pair<const char*, const char*> label{"state", state.c_str()};
      b.sample({}, {count}, 0, &label);
    }
    b.time_and_period("goroutine", "count", 1);
    gz = b.finish_gzipped();
  });
  if (gz.empty()) {
    out.setstate(std::ios::badbit);
    return;
  }
  out.write(gz.data(), static_cast<std::streamsize>(gz.size()));
}

}  // namespace gort::pprof
