// Goroutines: go, Gosched, GOMAXPROCS, NumGoroutine, sleep_for, blocking, run.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>

#include <gort/heap.hpp>
#include <gort/runtime.hpp>

namespace gort {

namespace internal {
// A goroutine's function with its arguments, as a managed object scanned conservatively: what it
// captures stays alive while the goroutine may still use it.
struct GoClosureBase {
  void (*invoke)(GoClosureBase* self);
};
template <class F>
struct GoClosure final : GoClosureBase {
  explicit GoClosure(F f) : GoClosureBase{&call}, fn(std::move(f)) {}
  F fn;
  static void call(GoClosureBase* self) { static_cast<GoClosure*>(self)->fn(); }
  void trace(Tracer& t) const { mark_range(t, this, sizeof(*this)); }
};
void spawn(GoClosureBase* c);
void yield();
int num_goroutine();
int gomaxprocs(int n);
void sleep_ns(int64_t ns);
void enter_blocking();
void exit_blocking();
void set_main_is_goroutine(bool on);
}  // namespace internal

// Starts f(args...) as a new goroutine. The function and its arguments are copied (moved) into
// the goroutine and kept alive by it, as in Go.
template <class F, class... A>
void go(F&& f, A&&... args) {
  auto call = [fn = std::forward<F>(f), ... as = std::forward<A>(args)]() mutable { std::invoke(fn, as...); };
  internal::spawn(make<internal::GoClosure<decltype(call)>>(std::move(call)));
}

// Yields the processor, letting other goroutines run; the caller resumes automatically.
inline void Gosched() { internal::yield(); }
// Sets the number of processors (n >= 1) and returns the previous value; n < 1 only reads it.
inline int GOMAXPROCS(int n) { return internal::gomaxprocs(n); }
// The number of goroutines that currently exist (the program's main counts as one).
inline int NumGoroutine() { return internal::num_goroutine(); }

// Pauses the calling goroutine (its processor runs others meanwhile) or attached thread.
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  internal::sleep_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// Runs fn, a blocking system call or any long call outside gort: the goroutine's processor is
// handed to another thread meanwhile, and collections never wait for fn.
template <class F>
auto blocking(F&& fn) -> decltype(fn()) {
  struct Exit {
    ~Exit() { internal::exit_blocking(); }
  };
  internal::enter_blocking();
  Exit exit;
  return fn();
}

// Starts a Runtime, runs main_fn as the main goroutine, waits for it and returns its int (or 0).
template <class F>
int run(F&& main_fn, const Options& opts = {});

}  // namespace gort
