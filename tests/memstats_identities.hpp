// MemStats' identities (docs/memstats.md, "Identities"), shared by the test suite and the
// fuzzer (tests/fuzz/): no doctest, no allocation.
#pragma once
#include <gort/gort.hpp>

#include <cstdint>

namespace gort_test {

// Go's first 61 size classes: the sizes MemStats.BySize reports.
inline constexpr uint32_t kBySizeSizes[61] = {
    0,    8,    16,   24,   32,   48,   64,   80,    96,    112,   128,   144,   160,   176,   192,  208,
    224,  240,  256,  288,  320,  352,  384,  416,   448,   480,   512,   576,   640,   704,   768,  896,
    1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304,  2688,  3072,  3200,  3456,  4096,  4864,  5376, 6144,
    6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432};

// Every identity that holds within one snapshot (docs/memstats.md, "Identities"): the first one
// `m` breaks, or null. No allocation, no libstdc++: goroutines check their own snapshots.
inline const char* broken_identity(const gort::MemStats& m) {
  if (m.Sys != m.HeapSys + m.StackSys + m.MSpanSys + m.MCacheSys + m.BuckHashSys + m.GCSys + m.OtherSys)
    return "Sys == sum of *Sys";
  if (m.HeapIdle + m.HeapInuse != m.HeapSys) return "HeapIdle + HeapInuse == HeapSys";
  if (m.HeapReleased > m.HeapIdle) return "HeapReleased <= HeapIdle";
  if (m.Alloc != m.HeapAlloc) return "Alloc == HeapAlloc";
  if (m.HeapAlloc > m.HeapInuse) return "HeapAlloc <= HeapInuse";
  if (m.HeapAlloc > m.TotalAlloc) return "HeapAlloc <= TotalAlloc";
  if (m.HeapObjects != m.Mallocs - m.Frees) return "HeapObjects == Mallocs - Frees";
  if (m.Frees > m.Mallocs) return "Frees <= Mallocs";
  if (m.StackInuse > m.StackSys) return "StackInuse <= StackSys";
  if (m.MSpanInuse > m.MSpanSys) return "MSpanInuse <= MSpanSys";
  if (m.MCacheInuse > m.MCacheSys) return "MCacheInuse <= MCacheSys";
  if (m.Lookups != 0 || !m.EnableGC || m.DebugGC) return "Lookups, EnableGC, DebugGC";
  if (!(m.GCCPUFraction >= 0.0 && m.GCCPUFraction <= 1.0)) return "0 <= GCCPUFraction <= 1";
  if (m.NumForcedGC > m.NumGC) return "NumForcedGC <= NumGC";
  if (m.NumGC > 0 ? m.LastGC != m.PauseEnd[(m.NumGC + 255) % 256] : m.LastGC != 0)
    return "LastGC == PauseEnd[(NumGC+255)%256]";
  uint64_t pauses = 0;
  for (uint64_t p : m.PauseNs) pauses += p;
  if (m.NumGC < 256) {
    if (m.PauseTotalNs != pauses) return "PauseTotalNs == sum of PauseNs";
    for (uint32_t i = m.NumGC; i < 256; ++i)  // ring entries of cycles that have not happened yet
      if (m.PauseNs[i] != 0 || m.PauseEnd[i] != 0) return "PauseNs/PauseEnd zero past NumGC";
  } else if (m.PauseTotalNs < pauses) {
    return "PauseTotalNs >= sum of PauseNs";
  }
  uint64_t by_mallocs = 0, by_frees = 0, by_bytes = 0;
  for (int i = 0; i < 61; ++i) {
    if (m.BySize[i].Size != kBySizeSizes[i]) return "BySize sizes";
    if (m.BySize[i].Frees > m.BySize[i].Mallocs) return "BySize[i].Frees <= BySize[i].Mallocs";
    by_mallocs += m.BySize[i].Mallocs;
    by_frees += m.BySize[i].Frees;
    by_bytes += m.BySize[i].Mallocs * m.BySize[i].Size;
  }
  if (m.BySize[0].Mallocs != 0 || m.BySize[0].Frees != 0) return "BySize[0] empty";
  if (by_mallocs > m.Mallocs) return "sum of BySize Mallocs <= Mallocs";
  if (by_frees > m.Frees) return "sum of BySize Frees <= Frees";
  if (by_bytes > m.TotalAlloc) return "sum of BySize bytes <= TotalAlloc";
  return nullptr;
}

}  // namespace gort_test
