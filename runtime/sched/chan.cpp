// Channels (Go's chan.go).
//
// A channel is a managed object: a header (lock, counts, wait queues) followed by a ring buffer
// of cap elements. Its type traces the whole object conservatively, so values in the buffer keep
// what they reference alive; a value being handed over lives on the blocked sender's or
// receiver's stack, which the collector scans too. Blocked senders and receivers are Waiters on
// the channel's queues; the Waiter's data points at the element on its stack.
//
// Send: a waiting receiver gets the value directly; else it goes in the buffer if there is room;
// else the sender waits. Receive: a waiting sender's value is taken (for a full buffer, the head
// of the buffer is taken and the sender's value queued at its tail, so order holds); else the
// buffer's head; else, closed: nothing; else the receiver waits. Close wakes everyone: receivers
// get nothing, senders throw, as Go panics.
#include <gort/chan.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "runtime/core/lock.hpp"
#include "runtime/core/panic.hpp"
#include "runtime/core/sysmem.hpp"
#include "runtime/core/thread.hpp"
#include "runtime/gc/barrier.hpp"
#include "runtime/gc/typeinfo.hpp"
#include "runtime/sched/proc.hpp"

namespace gort::internal {

struct WaitQueue {
  Waiter* head = nullptr;
  Waiter* tail = nullptr;
  void push(Waiter* w) {
    w->next = nullptr;
    if (tail) tail->next = w; else head = w;
    tail = w;
  }
  Waiter* pop() {
    Waiter* w = head;
    if (w) {
      head = w->next;
      if (!head) tail = nullptr;
    }
    return w;
  }
  // The first waiter that can still be woken (skips the cases of selects already decided).
  Waiter* pop_claimed() {
    while (Waiter* w = pop())
      if (claim(*w)) return w;
    return nullptr;
  }
  void remove(Waiter* w) {
    Waiter* prev = nullptr;
    for (Waiter* x = head; x; prev = x, x = x->next) {
      if (x != w) continue;
      if (prev) prev->next = x->next; else head = x->next;
      if (tail == x) tail = prev;
      return;
    }
  }
};

struct ChanCore {
  size_t total_bytes;  // of the whole object, for the conservative trace
  const ChanOps* ops;
  SpinLock lock;
  size_t cap, count = 0, sendx = 0, recvx = 0;
  size_t buf_offset;
  bool closed = false;
  WaitQueue recvq, sendq;

  char* slot(size_t i) { return reinterpret_cast<char*>(this) + buf_offset + i * ops->size; }
  // The whole object, conservatively: the buffer holds values of a type erased here. Part of
  // the conservative scan, so not instrumented either (core/sanitizer.hpp): a marker may read
  // total_bytes of a channel still under construction (allocated just before a mark began),
  // and finds 0 there (fresh memory is zeroed) or the size.
  GORT_NO_SANITIZE_SCAN void trace(Tracer& t) const { mark_range(t, this, total_bytes); }
  ~ChanCore() {
    for (size_t i = 0; i < count; ++i) ops->destroy(slot((recvx + i) % cap));
  }
};

namespace {
// Locks a channel from a goroutine or thread: inside one critical section, as park() expects.
void lock_chan(ChanCore* c) {
  enter_critical();
  c->lock.lock();
}
void unlock_chan(ChanCore* c) {
  c->lock.unlock();
  leave_critical();
}
}  // namespace

ChanCore* chan_make(size_t cap, const ChanOps* ops) {
  size_t offset = (sizeof(ChanCore) + ops->align - 1) / ops->align * ops->align;
  size_t total = offset + cap * ops->size;
  auto* c = ::new (allocate(total, type_index<ChanCore>(), false)) ChanCore{total, ops, {}, cap, 0, 0, 0, offset, false, {}, {}};
  return c;
}

namespace {
enum class Outcome { Done, Closed, WouldBlock };

// While a mark runs, every value a channel moves is shaded (mbarrier.cpp), under the channel's
// lock: into the buffer or onto a receiver's stack (the insertion half of the barrier), out of
// the buffer or off a blocked sender's stack (the deletion half). Values are type-erased: shaded
// word by word, as the buffer is traced.
void shade_value(ChanCore* c, const void* v) {
  if (gc_marking()) [[unlikely]] shade_range(v, c->ops->size);
}

// A send that needs no waiting, with c locked: to a waiting receiver, or into the buffer.
Outcome try_send_locked(ChanCore* c, void* elem) {
  if (c->closed) return Outcome::Closed;
  shade_value(c, elem);
  if (Waiter* r = c->recvq.pop_claimed()) {
    c->ops->move_construct(r->data, elem);
    r->ok = true;
    ready(*r);
    return Outcome::Done;
  }
  if (c->count < c->cap) {
    c->ops->move_construct(c->slot(c->sendx), elem);
    c->sendx = (c->sendx + 1) % c->cap;
    ++c->count;
    return Outcome::Done;
  }
  return Outcome::WouldBlock;
}

// A receive that needs no waiting, with c locked: from a waiting sender, the buffer, or closed.
Outcome try_recv_locked(ChanCore* c, void* out) {
  if (Waiter* s = c->sendq.pop_claimed()) {
    shade_value(c, s->data);
    if (c->cap == 0) {
      c->ops->move_construct(out, s->data);
    } else {
      // Full buffer: take its head, the sender's value goes to its tail.
      shade_value(c, c->slot(c->recvx));
      c->ops->move_construct(out, c->slot(c->recvx));
      c->ops->destroy(c->slot(c->recvx));
      c->ops->move_construct(c->slot(c->recvx), s->data);
      c->recvx = (c->recvx + 1) % c->cap;
      c->sendx = c->recvx;
    }
    s->ok = true;
    ready(*s);
    return Outcome::Done;
  }
  if (c->count > 0) {
    shade_value(c, c->slot(c->recvx));
    c->ops->move_construct(out, c->slot(c->recvx));
    c->ops->destroy(c->slot(c->recvx));
    c->recvx = (c->recvx + 1) % c->cap;
    --c->count;
    return Outcome::Done;
  }
  return c->closed ? Outcome::Closed : Outcome::WouldBlock;
}
}  // namespace

void chan_send(ChanCore* c, void* elem) {
  lock_chan(c);
  Outcome o = try_send_locked(c, elem);
  if (o != Outcome::WouldBlock) {
    unlock_chan(c);
    if (o == Outcome::Closed) throw_logic_error("send on closed channel");
    return;
  }
  Waiter w;
  init_waiter(w);
  w.wait_reason = "chan send";
  w.data = elem;
  c->sendq.push(&w);
  park(w, c->lock);
  if (!w.ok) throw_logic_error("send on closed channel");
}

bool chan_recv(ChanCore* c, void* out) {
  lock_chan(c);
  Outcome o = try_recv_locked(c, out);
  if (o != Outcome::WouldBlock) {
    unlock_chan(c);
    return o == Outcome::Done;
  }
  Waiter w;
  init_waiter(w);
  w.wait_reason = "chan receive";
  w.data = out;
  c->recvq.push(&w);
  park(w, c->lock);
  return w.ok;
}

namespace {
// The distinct channels of a select, in address order: the order they are locked in.
struct LockSet {
  ChanCore* chans[kMaxSelectCases];
  int n = 0;
  void lock() {
    for (int i = 0; i < n; ++i) chans[i]->lock.lock();
  }
  static void unlock(void* self) {
    auto* ls = static_cast<LockSet*>(self);
    for (int i = ls->n; i-- > 0;) ls->chans[i]->lock.unlock();
  }
};
}  // namespace

int chan_select(const SelectCase* cases, int n, bool block, bool* recv_ok) {
  if (n > kMaxSelectCases) throw_invalid_argument("gort::select: too many cases");
  *recv_ok = false;
  // Poll order: a random permutation, so that no ready case is favoured (Go's pollorder).
  int order[kMaxSelectCases];
  for (int i = 0; i < n; ++i) {
    int j = static_cast<int>(fastrand() % static_cast<uint32_t>(i + 1));
    order[i] = order[j];
    order[j] = i;
  }
  LockSet ls;
  for (int i = 0; i < n; ++i) ls.chans[ls.n++] = cases[i].c;
  // Lock order: by address, each channel once. An insertion sort by swaps (at most 64 entries):
  // std::sort's moves compile to a memmove call (core/mem.hpp says why that matters).
  for (int i = 1; i < ls.n; ++i)
    for (int j = i; j > 0 && ls.chans[j] < ls.chans[j - 1]; --j) std::swap(ls.chans[j], ls.chans[j - 1]);
  int kept = 0;
  for (int i = 0; i < ls.n; ++i)
    if (kept == 0 || ls.chans[i] != ls.chans[kept - 1]) ls.chans[kept++] = ls.chans[i];
  ls.n = kept;

  enter_critical();
  ls.lock();
  for (int k = 0; k < n; ++k) {
    const SelectCase& sc = cases[order[k]];
    Outcome o = sc.send ? try_send_locked(sc.c, sc.elem) : try_recv_locked(sc.c, sc.elem);
    if (o == Outcome::WouldBlock) continue;
    LockSet::unlock(&ls);
    leave_critical();
    if (sc.send && o == Outcome::Closed) throw_logic_error("send on closed channel");
    *recv_ok = o == Outcome::Done;
    return order[k];
  }
  if (!block) {
    LockSet::unlock(&ls);
    leave_critical();
    return -1;
  }
  // Wait on every case at once; the first channel operation to claim one of them wins. The
  // waiters are queued in the random poll order: a counterpart arriving later wakes the first
  // one queued on its channel, so several cases on one channel must not always queue in the
  // order they were written (Go's TestPseudoRandomSend).
  std::atomic<uint32_t> done{0};
  Waiter ws[kMaxSelectCases];
  for (int k = 0; k < n; ++k) {
    int i = order[k];
    init_waiter(ws[i]);
    ws[i].wait_reason = "select";
    ws[i].wake = &ws[0].own_wake;
    ws[i].select_done = &done;
    ws[i].index = i;
    ws[i].data = cases[i].elem;
    (cases[i].send ? cases[i].c->sendq : cases[i].c->recvq).push(&ws[i]);
  }
  park_with(ws[0], &LockSet::unlock, &ls);
  int won = static_cast<int>(done.load(std::memory_order_acquire)) - 1;
  if (won < 0) fatal("select woken without a case");
  // Take the other cases' waiters off their queues.
  enter_critical();
  ls.lock();
  for (int i = 0; i < n; ++i)
    if (i != won) (cases[i].send ? cases[i].c->sendq : cases[i].c->recvq).remove(&ws[i]);
  LockSet::unlock(&ls);
  leave_critical();
  if (cases[won].send && !ws[won].ok) throw_logic_error("send on closed channel");
  *recv_ok = ws[won].ok;
  return won;
}

void chan_close(ChanCore* c) {
  lock_chan(c);
  if (c->closed) {
    unlock_chan(c);
    throw_logic_error("close of closed channel");
  }
  c->closed = true;
  while (Waiter* r = c->recvq.pop_claimed()) {
    r->ok = false;
    ready(*r);
  }
  while (Waiter* s = c->sendq.pop_claimed()) {
    s->ok = false;
    ready(*s);
  }
  unlock_chan(c);
}

size_t chan_len(ChanCore* c) {
  lock_chan(c);
  size_t n = c->count;
  unlock_chan(c);
  return n;
}

size_t chan_cap(ChanCore* c) { return c->cap; }

}  // namespace gort::internal
