// Metadata allocators (Go's persistentalloc and fixalloc).
//
// The runtime never uses malloc for its own structures: malloc's locks may be held by a thread
// that is stopped for a collection, and malloc'd bytes would escape MemStats.Sys. Instead:
//  - PersistentAlloc hands out never-freed chunks carved from 256 KiB mappings, counted in the
//    SysStat it was created with;
//  - FixAlloc<T> recycles fixed-size records (spans, caches) through a free list on top of it and
//    tracks how many bytes are in use (MSpanInuse, MCacheInuse).
// Both take their own lock, so they may be called from any thread inside a critical section.
#pragma once
#include <cstddef>
#include <cstring>
#include <new>

#include "runtime/core/lock.hpp"
#include "runtime/core/sysmem.hpp"

namespace gort::internal {

class PersistentAlloc {
 public:
  explicit constexpr PersistentAlloc(SysStat& stat) : stat_(stat) {}
  // Zeroed memory of `bytes`, aligned to `align` (a power of two, at most 4096).
  // noexcept (running out of memory is fatal): no unwinding path, so with split stacks no call
  // into the unwinder that would send each call through __morestack (core/mem.hpp).
  void* alloc(size_t bytes, size_t align = 16) noexcept;

 private:
  static constexpr size_t kChunk = 256 << 10;
  SysStat& stat_;
  SpinLock lock_;
  char* cur_ = nullptr;
  char* end_ = nullptr;
};

class FixAllocBase {
 public:
  FixAllocBase(size_t size, size_t align, SysStat& sys, std::atomic<uint64_t>& inuse)
      : size_(size), align_(align), pa_(sys), inuse_(inuse) {}
  void* alloc() noexcept;
  void free(void* p) noexcept;

 private:
  struct FreeNode { FreeNode* next; };
  size_t size_;
  size_t align_;
  PersistentAlloc pa_;
  std::atomic<uint64_t>& inuse_;
  SpinLock lock_;
  FreeNode* free_ = nullptr;
};

template <class T>
class FixAlloc : private FixAllocBase {
 public:
  FixAlloc(SysStat& sys, std::atomic<uint64_t>& inuse)
      : FixAllocBase(sizeof(T), alignof(T) > alignof(std::max_align_t) ? alignof(T) : alignof(std::max_align_t), sys,
                     inuse) {}
  template <class... A>
  T* make(A&&... a) { return ::new (FixAllocBase::alloc()) T(static_cast<A&&>(a)...); }
  void destroy(T* p) { p->~T(); FixAllocBase::free(p); }
};

}  // namespace gort::internal
