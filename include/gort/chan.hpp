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
constexpr int kMaxSelectCases = 64;
struct SelectCase {
  ChanCore* c;
  void* elem;  // send: the value to move from; receive: raw storage to construct into
  bool send;
};
// Go's selectgo: runs one ready case (chosen at random among the ready ones), or, when none is
// ready, -1 if !block, else waits for the first. Returns the case's index; *recv_ok is false for a
// receive that found the channel closed.
int chan_select(const SelectCase* cases, int n, bool block, bool* recv_ok);
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
  internal::ChanCore* core() const { return c_; }

 private:
  internal::ChanCore* c_;
};

// select cases: on_recv(ch, out) fills out with the value (or nullopt if ch is closed),
// on_send(ch, v) sends v, on_default() makes the select non-blocking.
template <class T>
struct OnRecv {
  internal::ChanCore* c;
  std::optional<T>* out;
  alignas(T) unsigned char buf[sizeof(T)];
};
template <class T>
struct OnSend {
  internal::ChanCore* c;
  T value;
};
struct OnDefault {};

template <class T>
OnRecv<T> on_recv(const Chan<T>& ch, std::optional<T>& out) { return OnRecv<T>{ch.core(), &out, {}}; }
template <class T, class V>
OnSend<T> on_send(const Chan<T>& ch, V&& v) { return OnSend<T>{ch.core(), T(std::forward<V>(v))}; }
inline OnDefault on_default() { return {}; }

namespace internal {
template <class T>
void select_describe(OnRecv<T>& c, SelectCase* d, int* n, int* dflt, int* map, int i) {
  d[*n] = {c.c, c.buf, false};
  map[(*n)++] = i;
  (void)dflt;
}
template <class T>
void select_describe(OnSend<T>& c, SelectCase* d, int* n, int* dflt, int* map, int i) {
  d[*n] = {c.c, &c.value, true};
  map[(*n)++] = i;
  (void)dflt;
}
inline void select_describe(OnDefault&, SelectCase*, int*, int* dflt, int*, int i) { *dflt = i; }

template <class T>
void select_complete(OnRecv<T>& c, bool ok) {
  if (!ok) {
    c.out->reset();
    return;
  }
  T* v = std::launder(reinterpret_cast<T*>(c.buf));
  c.out->emplace(std::move(*v));
  v->~T();
}
template <class C>
void select_complete(C&, bool) {}
}  // namespace internal

// Go's select statement: runs exactly one of the cases and returns its position in the argument
// list. Among several ready cases one is chosen at random; with no case ready, waits, unless an
// on_default() is given, whose position is then returned. Sending on a closed channel throws
// std::logic_error.
template <class... Cases>
int select(Cases&&... cases) {
  constexpr int kN = sizeof...(Cases);
  static_assert(kN > 0 && kN <= internal::kMaxSelectCases, "gort::select: 1 to 64 cases");
  internal::SelectCase descs[kN];
  int map[kN];
  int n = 0, dflt = -1, i = 0;
  (internal::select_describe(cases, descs, &n, &dflt, map, i++), ...);
  bool ok = false;
  int chosen = internal::chan_select(descs, n, dflt < 0, &ok);
  if (chosen < 0) return dflt;
  int pos = map[chosen];
  i = 0;
  ((i++ == pos ? internal::select_complete(cases, ok) : void()), ...);
  return pos;
}

}  // namespace gort
