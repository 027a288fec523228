#include "runtime/core/persistent.hpp"

#include "runtime/core/mem.hpp"

namespace gort::internal {

void* PersistentAlloc::alloc(size_t bytes, size_t align) noexcept {
  LockGuard g(lock_);
  uintptr_t p = round_up(reinterpret_cast<uintptr_t>(cur_), align);
  if (cur_ == nullptr || p + bytes > reinterpret_cast<uintptr_t>(end_)) {
    size_t chunk = bytes + align > kChunk ? round_up(bytes + align, kOsPageSize) : kChunk;
    cur_ = static_cast<char*>(sys_alloc(chunk, stat_));
    end_ = cur_ + chunk;
    p = round_up(reinterpret_cast<uintptr_t>(cur_), align);
  }
  cur_ = reinterpret_cast<char*>(p + bytes);
  return reinterpret_cast<void*>(p);
}

void* FixAllocBase::alloc() noexcept {
  void* p;
  {
    LockGuard g(lock_);
    p = free_;
    if (p) free_ = free_->next;
  }
  if (p) mem_zero(p, size_);
  else p = pa_.alloc(size_, align_);  // MSpanSys/MCacheSys grow first: in use <= obtained
  StatsUpdate batch;
  inuse_.fetch_add(size_, std::memory_order_relaxed);
  return p;
}

void FixAllocBase::free(void* p) noexcept {
  {
    StatsUpdate batch;
    inuse_.fetch_sub(size_, std::memory_order_relaxed);
  }
  LockGuard g(lock_);
  auto* n = static_cast<FreeNode*>(p);
  n->next = free_;
  free_ = n;
}

}  // namespace gort::internal
