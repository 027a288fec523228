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

#include <cstring>
#include <stdexcept>

#include "runtime/core/lock.hpp"
#include "runtime/core/thread.hpp"
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
  ~ChanCore() {
    for (size_t i = 0; i < count; ++i) ops->destroy(slot((recvx + i) % cap));
  }
};

namespace {
uint16_t chan_type() {
  static const uint16_t t = register_type(
      [](const void* o, Tracer& tr) {
        auto* c = static_cast<const ChanCore*>(o);
        mark_range(tr, o, c->total_bytes);
      },
      [](void* o) { static_cast<ChanCore*>(o)->~ChanCore(); }, "gort::Chan");
  return t;
}

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
  auto* c = ::new (allocate(total, chan_type(), false)) ChanCore{total, ops, {}, cap, 0, 0, 0, offset, false, {}, {}};
  return c;
}

void chan_send(ChanCore* c, void* elem) {
  lock_chan(c);
  if (c->closed) {
    unlock_chan(c);
    throw std::logic_error("send on closed channel");
  }
  if (Waiter* r = c->recvq.pop()) {
    c->ops->move_construct(r->data, elem);
    r->ok = true;
    ready(*r);
    unlock_chan(c);
    return;
  }
  if (c->count < c->cap) {
    c->ops->move_construct(c->slot(c->sendx), elem);
    c->sendx = (c->sendx + 1) % c->cap;
    ++c->count;
    unlock_chan(c);
    return;
  }
  Waiter w;
  init_waiter(w);
  w.data = elem;
  c->sendq.push(&w);
  park(w, c->lock);
  if (!w.ok) throw std::logic_error("send on closed channel");
}

bool chan_recv(ChanCore* c, void* out) {
  lock_chan(c);
  if (Waiter* s = c->sendq.pop()) {
    if (c->cap == 0) {
      c->ops->move_construct(out, s->data);
    } else {
      // Full buffer: take its head, the sender's value goes to its tail.
      c->ops->move_construct(out, c->slot(c->recvx));
      c->ops->destroy(c->slot(c->recvx));
      c->ops->move_construct(c->slot(c->recvx), s->data);
      c->recvx = (c->recvx + 1) % c->cap;
      c->sendx = c->recvx;
    }
    s->ok = true;
    ready(*s);
    unlock_chan(c);
    return true;
  }
  if (c->count > 0) {
    c->ops->move_construct(out, c->slot(c->recvx));
    c->ops->destroy(c->slot(c->recvx));
    c->recvx = (c->recvx + 1) % c->cap;
    --c->count;
    unlock_chan(c);
    return true;
  }
  if (c->closed) {
    unlock_chan(c);
    return false;
  }
  Waiter w;
  init_waiter(w);
  w.data = out;
  c->recvq.push(&w);
  park(w, c->lock);
  return w.ok;
}

void chan_close(ChanCore* c) {
  lock_chan(c);
  if (c->closed) {
    unlock_chan(c);
    throw std::logic_error("close of closed channel");
  }
  c->closed = true;
  while (Waiter* r = c->recvq.pop()) {
    r->ok = false;
    ready(*r);
  }
  while (Waiter* s = c->sendq.pop()) {
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
