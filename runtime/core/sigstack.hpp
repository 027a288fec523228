// Program signal handlers run on the alternate signal stack (Go's setsigstack, in initsig).
//
// A handler runs on the stack of whatever it interrupted unless it was installed with
// SA_ONSTACK. On a goroutine that is a stack of 8 KiB (or a split-stack segment with a few KiB
// left below its guard): the kernel's signal frame alone takes about 3 KiB with AVX-512's XSAVE
// state, and the handler's frames come below it, past the guard that split-stack prologues
// check, since neither the kernel nor a handler built without -fsplit-stack looks at it. Every
// M has an alternate signal stack (64 KiB), so a handler with SA_ONSTACK runs there, whatever
// the goroutine's stack holds.
//
// Go's rule for non-Go code is the same: handlers must be installed with SA_ONSTACK; Go adds it
// to the handlers installed before it started, and so does gort when a Runtime starts. A
// handler the program installs later must ask for SA_ONSTACK itself (docs/reliability.md).
#pragma once

namespace gort::internal {

// Adds SA_ONSTACK to every signal's handler that is a function installed without it, keeping
// the handler, its mask and its other flags; SIG_DFL and SIG_IGN stay as they are. Returns how
// many dispositions it changed.
int add_signal_stack_to_handlers();

}  // namespace gort::internal
