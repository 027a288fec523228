// Chan<T>: Go's channels, buffered or not, with Go's close semantics.
#pragma once
#include <cstddef>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include <gort/heap.hpp>

namespace gort {

namespace internal {
// How the channel core moves and destroys elements of the (type-erased) element type.
struct ChanOps {
  size_t size;
  size_t align;
  void (*move_construct)(void* dst, void* src);
  void (*destroy)(void* p);
};
template <class T>
inline constexpr ChanOps kChanOps = {
    sizeof(T), alignof(T), [](void* d, void* s) { ::new (d) T(std::move(*static_cast<T*>(s))); },
    [](void* p) { static_cast<T*>(p)->~T(); }};

struct ChanCore;  // a managed object: its buffer is scanned conservatively
ChanCore* chan_make(size_t cap, const ChanOps* ops);
void chan_send(ChanCore* c, void* elem);        // moves *elem in; throws on a closed channel
bool chan_recv(ChanCore* c, void* out);         // move-constructs into raw storage; false: closed, drained
void chan_close(ChanCore* c);
size_t chan_len(ChanCore* c);
size_t chan_cap(ChanCore* c);
}  // namespace internal

// A channel of T. Copies of a Chan refer to the same channel (Go's chan is a reference), which
// lives on the managed heap: like any managed pointer, a Chan kept outside managed memory and
// stacks needs a Root. Values in the channel (buffered, or being handed from a sender to a
// receiver) keep what they point to alive.
template <class T>
class Chan {
 public:
  explicit Chan(size_t cap = 0) : c_(internal::chan_make(cap, &internal::kChanOps<T>)) {}

  // Sends v, blocking until a receiver takes it or buffer space is free. Sending on a closed
  // channel throws std::logic_error (Go panics).
  void send(T v) { internal::chan_send(c_, &v); }
  // Receives a value, blocking until one is there; nullopt once the channel is closed and drained.
  std::optional<T> recv() {
    alignas(T) unsigned char buf[sizeof(T)];
    if (!internal::chan_recv(c_, buf)) return std::nullopt;
    T* v = std::launder(reinterpret_cast<T*>(buf));
    std::optional<T> r(std::move(*v));
    v->~T();
    return r;
  }
  // Closes the channel: receivers drain what is buffered, then get nullopt; blocked senders
  // throw. Closing twice throws std::logic_error.
  void close() { internal::chan_close(c_); }
  size_t len() const { return internal::chan_len(c_); }
  size_t cap() const { return internal::chan_cap(c_); }
  friend bool operator==(const Chan& a, const Chan& b) { return a.c_ == b.c_; }

 private:
  internal::ChanCore* c_;
};

}  // namespace gort
