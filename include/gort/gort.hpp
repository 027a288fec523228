// gort: Go's runtime as a C++ library. The whole public API; see ../shared/CONTRACT.md and README.md.
#pragma once
#include <gort/finalizer.hpp>
#include <gort/chan.hpp>
#include <gort/goroutine.hpp>
#include <gort/heap.hpp>
#include <gort/memstats.hpp>
#include <gort/monitor.hpp>
#include <gort/pprof.hpp>
#include <gort/runtime.hpp>
#include <gort/sync.hpp>

namespace gort {

template <class F>
int run(F&& main_fn, const Options& opts) {
  internal::set_main_is_goroutine(true);
  int result = 0;
  {
    Runtime rt(opts);
    WaitGroup done;
    done.Add(1);
    go([&] {
      if constexpr (std::is_convertible_v<decltype(main_fn()), int>) result = main_fn();
      else main_fn();
      done.Done();
    });
    done.Wait();
  }
  internal::set_main_is_goroutine(false);
  return result;
}

}  // namespace gort
