#!/usr/bin/env bash
# Split stacks: the paths a goroutine runs for every allocation, channel operation and switch,
# and those an M runs on its own 256 KiB stack for every span it caches or sweeps, must not call
# code built without split-stack.
#
# gold gives a split-stack function that calls such code (libc, libstdc++, or libgcc's
# _Unwind_Resume from an exception cleanup the compiler added) a prologue that asks libgcc for
# 1 MiB of free stack on every call (__morestack_non_split): on a goroutine's 8 KiB stack, a new
# 1 MiB segment. Nothing fails, the program only grows (StackInuse) and slows down, so this looks
# at the machine code. A cleanup pad alone is enough: a batch of statistics (an RAII guard) around
# a call that was not noexcept once put allocate() on this list.
#
# usage: check_split_hot_paths.sh BINARY   (a binary linked with the split-stack build of gort)
set -euo pipefail
bin=$1
hot='gort::internal::(allocate|root_job|segments_lend|segments_take_spares|stack_free|cache_next_window|cache_next_object|Central::cache_span|PageHeap::alloc|sweep_span|sweep_one|\(anonymous namespace\)::refill|sweep_on_alloc|chan_send|chan_recv|chan_select|chan_close|chan_make|park|park_with|ready|spawn|spawn_goroutine|yield|sleep_ns)\('
# The C++ runtime's entry points gort defines split-stack (runtime/sched/cxxcall.cpp), and two
# functions of the tests that call only those: gold must leave their prologues alone.
cxx='(operator new|operator delete|_Unwind_Resume$|gort_test_allocating_body|gort_test_unwinding_level)'
found=0
bad=0
while read -r addr size _ name; do
  found=$((found + 1))
  start=$((16#$addr))
  stop=$((start + 16#$size))
  if objdump -d --no-show-raw-insn --start-address="$start" --stop-address="$stop" "$bin" |
     grep -q '<__morestack_non_split>'; then
    echo "FAIL: $name calls code built without split-stack (1 MiB segment per call on a goroutine)"
    bad=$((bad + 1))
  fi
done < <(nm -S -C --defined-only "$bin" | awk '$3 == "T" || $3 == "t"' | grep -E " $hot| $cxx" || true)
if ((found < 30)); then
  echo "FAIL: found only $found of the hot-path functions in $bin (renamed? update the list)"
  exit 1
fi
if ((bad)); then exit 1; fi
echo "ok: $found hot-path functions never ask for a 1 MiB segment"
