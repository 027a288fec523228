// GODEBUG=gccheckmark=1 (Go's mcheckmark.go): after each concurrent mark, with the world
// stopped at mark termination, marks everything again from the roots and aborts with a
// diagnostic if that reaches an object the concurrent mark left white.
//
// The concurrent mark's verdict (each span's mark bytes) is set aside, the marks cleared, a
// stop-the-world mark run from the same roots, and the two compared; then the concurrent verdict
// is put back, so the cycle goes on as if nothing had been checked.
//
// Stacks are scanned conservatively, which the comparison must survive: a word in a dead frame
// could be taken for a live pointer that the concurrent mark missed. So, with checkmark on, every
// concurrent stack scan leaves nothing stale below what it scanned (it zeroes the dead part of
// the stack, or the stopped thread zeroes below itself, see mgcmark.cpp), the second mark scans
// stacks without the red zone, and it skips words a byte store could have forged from a stale
// pointer (mgcwork.hpp, skip_forgeable_words).
//
// The diagnostic names the object, its type, the marked objects that point at it and, up a
// chain of white referencers, the root words (stack, registers) that reach it, with what the
// concurrent mark read at that address when it scanned it: while checkmark is on, every
// conservative scan of the concurrent mark is remembered (address -> word) in a table mapped for
// the purpose. Nothing here uses malloc: scans and the verification run with threads stopped,
// which may hold malloc's locks.
#pragma once
#include <cstdint>

namespace gort::internal {

// World stopped, after the concurrent mark drained: verify it (aborts on a miss).
void checkmark_verify();
// World stopped, at the start of a concurrent cycle: the remembered scans start afresh.
void checkmark_begin_cycle();

// A word of a stack that the checking mark must not take for a pointer, because the concurrent
// mark found it stale when it scanned its address:
//  - it read the same address with a nonzero byte above bit 48 (a bool or short the compiler kept
//    in the top of the slot of a dead pointer), and a later byte store revealed the pointer; a
//    live pointer is stored whole;
//  - ASan builds: it read the same word there, poisoned (a local out of scope). The scope was
//    entered again since and the slot not yet assigned: its old value is as dead as it was, and
//    a pointer stored anew is covered by the barrier (mbarrier.cpp).
bool checkmark_revealed(uintptr_t addr, uintptr_t word);

// Set while conservative scans must be observed (remembered, or probed by a report).
extern bool g_observe_scans;
void checkmark_observe_scan(uintptr_t lo, uintptr_t hi);

}  // namespace gort::internal
