// The test runner: one gort::Runtime for the whole suite, as a program embedding gort would have.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <gort/gort.hpp>

int main(int argc, char** argv) {
  gort::Runtime rt;
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
