// gort: Go's runtime as a C++ library. The whole public API; see ../shared/CONTRACT.md and README.md.
#pragma once
#include <gort/finalizer.hpp>
#include <gort/heap.hpp>
#include <gort/memstats.hpp>
#include <gort/runtime.hpp>
