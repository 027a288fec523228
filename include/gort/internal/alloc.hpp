// make<T>'s inline allocation path: what of the allocating thread's cache it reads, and the path.
// Internal to gort: a program includes gort/heap.hpp, which includes this; nothing here is API.
//
// Why inline: GCBench's main thread spent 44% of its time in the library's fast path, much of it
// around the work rather than in it (gort's library is a shared object: a call through the GOT, a
// split-stack check, the size class looked up at run time). Here the size class is a constant of
// the call site and the path is a dozen instructions in the caller (Boehm GC's gc_inline.h does
// the same for its free lists): GCBench 0.88 of the out-of-line path's time, the alloc loop 0.63
// (docs/performance.md, seventeenth session). Everything else, including a miss here,
// is the library's: runtime/alloc/malloc.cpp (allocate) and runtime/alloc/mcache.hpp, which owns
// these structures and keeps them in step with its spans.
//
// The path (Go's nextFreeFast, mimalloc's free-list pop): in the thread's cache, the window of
// up to 64 free slots of the span cached for the object's size class (AllocWindow); take the
// lowest one if the span holds objects of this type only. Inside a critical section: a stop of
// the world (or a preemption) that arrives meanwhile waits until the section ends, so no
// collection ever sees a window half-updated or an object allocated but not yet zeroed.
#pragma once
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace gort::internal {

struct Cache;  // runtime/alloc/mcache.hpp

// Go's size classes (runtime/sizeclasses.go, Go 1.19): the object sizes of classes 1..67 (class
// 0 stands for objects over kMaxSmallSize, which get a span of their own).
inline constexpr int kNumSizeClasses = 68;
inline constexpr size_t kMaxSmallSize = 32768;
inline constexpr size_t kTinySize = 16;  // pointer-free objects below this share 16-byte blocks
inline constexpr uint16_t kClassToSize[kNumSizeClasses] = {
    0,     8,     16,    24,    32,    48,    64,    80,    96,    112,   128,   144,   160,   176,
    192,   208,   224,   240,   256,   288,   320,   352,   384,   416,   448,   480,   512,   576,
    640,   704,   768,   896,   1024,  1152,  1280,  1408,  1536,  1792,  2048,  2304,  2688,  3072,
    3200,  3456,  4096,  4864,  5376,  6144,  6528,  6784,  6912,  8192,  9472,  9728,  10240, 10880,
    12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768};

// The size class of a small object of `size` bytes (1..kMaxSmallSize): the smallest that fits.
// For constant sizes; the runtime looks sizes up in Go's index tables.
constexpr int size_class_of(size_t size) {
  int cls = 1;
  while (kClassToSize[cls] < size) ++cls;
  return cls;
}
// A span class: a size class and whether its objects hold pointers (noscan spans are never
// scanned), Go's spanClass.
constexpr int span_class(int sizeclass, bool noscan) { return sizeclass * 2 + (noscan ? 1 : 0); }
inline constexpr int kNumSpanClasses = kNumSizeClasses * 2;

// AllocWindow::type of a span whose objects do not all have one type (it keeps a table of them):
// never a type index, so the inline path always misses there.
inline constexpr uint16_t kMixedTypes = 0xffff;

// One span class's window of free slots, as the head of the cache's slot for the class; the
// cache's slots follow each other kAllocWindowStride bytes apart from the start of the Cache.
struct AllocWindow {
  uint64_t bits = 0;      // bit i set: the slot at window + i*elemsize is free, not yet handed out
  uintptr_t window = 0;   // address of the window's first slot
  uint32_t elemsize = 0;  // the span's object size
  // Objects handed out from the window not yet added to the cache's counts: incremented by this
  // thread alone, read by ReadMemStats on other threads (relaxed atomic).
  uint32_t taken = 0;
  uint16_t type = kMixedTypes;  // the type index of every object of the span, or kMixedTypes
  bool needzero = false;        // the span's memory may hold old data (else fresh from the OS)
};
inline constexpr size_t kAllocWindowStride = 64;

// Takes the lowest free slot of a window with free slots (bits != 0) of objects of `elemsize`
// bytes: the inline path's and the library's.
inline void* take_from_window(AllocWindow& w, size_t elemsize) {
  uint64_t bits = w.bits;
  w.bits = bits & (bits - 1);
  return reinterpret_cast<void*>(w.window + uintptr_t(std::countr_zero(bits)) * elemsize);
}

// The thread's allocation state, reached with one instruction (initial-exec TLS).
struct ThreadFront {
  Cache* cache = nullptr;  // null: the thread is not attached (make<T> throws, from the library)
  int critical = 0;        // depth of the runtime's critical sections (runtime/core/thread.hpp)
  bool suspend_pending = false;  // a stop arrived inside one: the thread stops when it leaves
};
extern thread_local constinit ThreadFront t_front __attribute__((tls_model("initial-exec")));

// The runtime's critical sections (runtime/core/thread.hpp explains them): a stop that arrives
// inside one only sets suspend_pending. The signal fences order the depth against the stop's
// signal handler, which reads it on this thread.
inline void enter_critical() {
  ++t_front.critical;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}
// Leaves one; true when it was the outermost (then a stop it held off is due).
inline bool leave_critical_section() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (--t_front.critical != 0) return false;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return true;
}

// Objects up to this size take the inline path: beyond it, initializing the object costs more
// than the call, and the inline zeroing would grow every call site.
inline constexpr size_t kMaxInlineSize = 256;
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kInlineAllocation = false;  // the library's critical sections poll for stops
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kInlineAllocation = false;
#else
inline constexpr bool kInlineAllocation = true;
#endif
#else
inline constexpr bool kInlineAllocation = true;
#endif

// The stop that a critical section held off, taken on the way out of the inline path (a call
// into the library, which returns `obj`).
void* stop_then_return(void* obj);

// A small object of `size` bytes and type index `type` from the window of its span class, or
// null (the library's allocate() then does the rest). The memory is zeroed.
template <size_t size, bool noscan>
[[gnu::always_inline]] inline void* allocate_inline(uint16_t type) {
  static_assert(size >= 1 && size <= kMaxSmallSize);
  constexpr int sizeclass = size_class_of(size);
  constexpr size_t elemsize = kClassToSize[sizeclass];
  constexpr int spanclass = span_class(sizeclass, noscan);
  Cache* cache = t_front.cache;
  if (!cache) [[unlikely]] return nullptr;
  auto& w = *reinterpret_cast<AllocWindow*>(reinterpret_cast<char*>(cache) + spanclass * kAllocWindowStride);
  enter_critical();
  void* obj = nullptr;
  if (w.bits && w.type == type) [[likely]] {
    obj = take_from_window(w, elemsize);
    __atomic_store_n(&w.taken, __atomic_load_n(&w.taken, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    if (w.needzero) __builtin_memset(obj, 0, elemsize);
  }
  if (leave_critical_section() && t_front.suspend_pending) [[unlikely]] return obj ? stop_then_return(obj) : nullptr;
  return obj;
}

}  // namespace gort::internal
