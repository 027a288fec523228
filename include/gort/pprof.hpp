// Profiles as in Go: runtime.MemProfileRate, pprof.WriteHeapProfile and the goroutine profile
// (docs/monitoring.md, "Heap profiles", "Goroutine dumps").
#pragma once
#include <iosfwd>

namespace gort {

// Like Go's runtime.MemProfileRate: the average number of bytes allocated between two sampled
// allocations (Poisson sampling over bytes; 1 samples every allocation, 0 turns sampling off).
// Go's default, 512 KiB. Set it as early as possible, ideally once, as Go's documentation asks;
// a change takes effect at each thread's next sample (within 64 MiB of allocation when it was 0).
extern int MemProfileRate;

namespace pprof {
// Like Go's pprof.WriteHeapProfile: writes the heap profile as of the last completed collection
// (sampled allocations by call stack, scaled to estimates of all allocations; in use and
// cumulative) as gzipped profile.proto, which `go tool pprof` reads. Frames are symbolized and
// demangled here (with file and line when the binary has debug information). Sets out's badbit
// if writing fails.
void WriteHeapProfile(std::ostream& out);

// Like Go's pprof.Lookup("goroutine").WriteTo(out, 0): the goroutine profile as gzipped
// profile.proto (goroutine/count), one sample per distinct stack with the number of goroutines
// on it. Stacks start at the program's own frames; a goroutine running on another thread is
// walked with that thread stopped for a moment (Go stops the world instead). Sets out's badbit if
// writing fails.
void WriteGoroutineProfile(std::ostream& out);
}  // namespace pprof

}  // namespace gort
