// Finalizers, cleanups and weak pointers with Go's semantics (runtime.SetFinalizer,
// runtime.AddCleanup, weak.Pointer). See docs/finalizers.md for every rule.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#include <gort/heap.hpp>

namespace gort {

namespace internal {
// A finalizer's or cleanup's function and captures, stored as a managed object whose bytes are
// scanned conservatively: captured managed pointers stay alive, and the storage is accounted.
// Dispatch goes through a function pointer, not a vtable, so a closure of trivially destructible
// captures is itself trivially destructible and is simply freed when it dies.
struct Closure {
  void (*invoke)(Closure* self, void* obj);
};
template <class F, class Arg>
struct ClosureOf final : Closure {
  ClosureOf(F f, Arg a) : Closure{&call}, fn(std::move(f)), arg(std::move(a)) {}
  F fn;
  Arg arg;
  static void call(Closure* self, void* obj) {
    auto* c = static_cast<ClosureOf*>(self);
    if constexpr (std::is_same_v<Arg, std::nullptr_t>) c->fn(obj); else { (void)obj; c->fn(c->arg); }
  }
  void trace(Tracer& t) const { mark_range(t, this, sizeof(*this)); }
};
// A closure for fn and arg: shared and never allocated when there is nothing to capture.
template <class F, class Arg>
Closure* make_closure(F fn, Arg arg) {
  if constexpr (std::is_empty_v<F> && (std::is_empty_v<Arg> || std::is_same_v<Arg, std::nullptr_t>)) {
    static ClosureOf<F, Arg> shared(std::move(fn), std::move(arg));
    return &shared;
  } else {
    return make<ClosureOf<F, Arg>>(std::move(fn), std::move(arg));
  }
}

struct WeakHandle;
// Set, clear, add: obj must be the start of a managed object, or (tiny_ok) any byte of a tiny block.
void set_finalizer(const void* obj, bool tiny_ok, Closure* fn);
void clear_finalizer(const void* obj, bool tiny_ok);
uint64_t add_cleanup(const void* obj, bool tiny_ok, Closure* fn);
void stop_cleanup(uintptr_t hidden_obj, uint64_t id);
WeakHandle* weak_acquire(const void* obj, bool tiny_ok);
void weak_retain(WeakHandle* h);
void weak_release(WeakHandle* h);
void* weak_target(WeakHandle* h);

// Go lets finalizers sit on any byte of a tiny block, for pointer-free objects under 16 bytes.
template <class T>
inline constexpr bool tiny_eligible = !Traceable<T> && std::is_trivially_destructible_v<T> && sizeof(T) < 16;
}  // namespace internal

// Sets the finalizer of obj, which must point to the start of a managed object: once the collector
// finds obj unreachable, it keeps it (and all it references) alive and runs fn(obj) on the
// finalizer goroutine; obj is freed by a later cycle if it is unreachable then. Throws
// std::invalid_argument (changing nothing) if obj is not the start of a managed object or already
// has a finalizer.
template <class T, class F>
  requires std::is_invocable_v<F&, T*>
void SetFinalizer(T* obj, F fn) {
  auto call = [f = std::move(fn)](void* o) mutable { f(static_cast<T*>(o)); };
  internal::set_finalizer(obj, internal::tiny_eligible<T>, internal::make_closure(std::move(call), nullptr));
}
// Removes obj's finalizer, if any.
template <class T>
void SetFinalizer(T* obj, std::nullptr_t) {
  internal::clear_finalizer(obj, internal::tiny_eligible<T>);
}

// A cleanup registered by AddCleanup. It does not keep its object alive.
class Cleanup {
 public:
  Cleanup() = default;
  // Cancels the cleanup, unless it was already queued to run.
  void Stop() {
    if (id_) internal::stop_cleanup(hidden_, id_);
  }

 private:
  template <class T, class F, class A>
  friend Cleanup AddCleanup(T*, F, A);
  Cleanup(uintptr_t hidden, uint64_t id) : hidden_(hidden), id_(id) {}
  uintptr_t hidden_ = 0;  // ~address: not a pointer to the conservative scan
  uint64_t id_ = 0;
};

// Go 1.24's runtime.AddCleanup: runs fn(arg) on the finalizer goroutine once obj is unreachable,
// without resurrecting it. Any number per object. arg must not reach obj, or obj never dies.
template <class T, class F, class A>
Cleanup AddCleanup(T* obj, F fn, A arg) {
  static_assert(std::is_invocable_v<F&, A&>, "AddCleanup: fn(arg) must be callable");
  uint64_t id = internal::add_cleanup(obj, internal::tiny_eligible<T>, internal::make_closure(std::move(fn), std::move(arg)));
  return Cleanup(~reinterpret_cast<uintptr_t>(obj), id);
}

// Go 1.24's weak.Pointer: does not keep its target alive; get() returns the target, or nullptr
// once the collector found it unreachable (before any finalizer of the target runs).
template <class T>
class Weak {
 public:
  Weak() = default;
  explicit Weak(T* p) : h_(p ? internal::weak_acquire(p, internal::tiny_eligible<T>) : nullptr) {}
  Weak(const Weak& o) : h_(o.h_) { if (h_) internal::weak_retain(h_); }
  Weak(Weak&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Weak& operator=(Weak o) noexcept { std::swap(h_, o.h_); return *this; }
  ~Weak() { if (h_) internal::weak_release(h_); }

  T* get() const { return h_ ? static_cast<T*>(internal::weak_target(h_)) : nullptr; }
  T* lock() const { return get(); }
  // Weak pointers to the same object compare equal, even after it is gone (Go's rule).
  friend bool operator==(const Weak& a, const Weak& b) { return a.h_ == b.h_; }

 private:
  internal::WeakHandle* h_ = nullptr;
};

}  // namespace gort
