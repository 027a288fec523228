// ChunkQueue<T>: an unbounded FIFO of small records in runtime memory (OtherSys), for the work the
// collector hands to its service threads (destructors, finalizers, cleanups).
//
// Thread-safe through one spin lock; on attached threads call it inside a critical section. `seq`
// changes with every push, so a consumer can sleep on it with a futex.
#pragma once
#include <atomic>
#include <cstddef>

#include "runtime/core/lock.hpp"
#include "runtime/core/persistent.hpp"

namespace gort::internal {

template <class T>
class ChunkQueue {
 public:
  explicit ChunkQueue(SysStat& stat) : pa_(stat) {}

  void push(const T& v) {
    LockGuard g(lock_);
    if (!tail_ || tail_->n == Chunk::kCap) {
      Chunk* c = free_;
      if (c) free_ = c->next; else c = static_cast<Chunk*>(pa_.alloc(sizeof(Chunk)));
      c->next = nullptr;
      c->n = c->head = 0;
      if (tail_) tail_->next = c; else head_ = c;
      tail_ = c;
    }
    tail_->items[tail_->n++] = v;
    ++size_;
    seq.fetch_add(1, std::memory_order_release);
  }
  bool pop(T* out) {
    LockGuard g(lock_);
    if (!head_) return false;
    *out = head_->items[head_->head++];
    --size_;
    if (head_->head == head_->n) {
      Chunk* c = head_;
      head_ = c->next;
      if (!head_) tail_ = nullptr;
      c->next = free_;
      free_ = c;
    }
    return true;
  }
  size_t size() {
    LockGuard g(lock_);
    return size_;
  }
  // Visits every queued record (the collector marks them as roots, world stopped).
  template <class F>
  void for_each(F&& fn) {
    LockGuard g(lock_);
    for (Chunk* c = head_; c; c = c->next)
      for (size_t i = c->head; i < c->n; ++i) fn(c->items[i]);
  }

  std::atomic<uint32_t> seq{0};

 private:
  struct Chunk {
    static constexpr size_t kCap = (8192 - 3 * sizeof(void*)) / sizeof(T);
    Chunk* next;
    size_t n, head;
    T items[kCap];
  };
  SpinLock lock_;
  Chunk *head_ = nullptr, *tail_ = nullptr, *free_ = nullptr;
  size_t size_ = 0;
  PersistentAlloc pa_;
};

}  // namespace gort::internal
