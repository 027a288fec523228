// gort managed objects: make<T>, make_array<T>, Ref<T>, Root<T>, Tracer.
//
// A managed object lives on gort's garbage-collected heap and is reclaimed once nothing reaches it.
// What reaches an object: raw pointers and Refs on the stack or in registers of an attached thread
// (scanned conservatively, interior pointers count), Root<T> handles (anywhere), and Ref<T> fields
// of reachable managed objects, which the collector finds through the type's trace() member.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <gort/internal/alloc.hpp>

namespace gort {

class Tracer;

namespace internal {
using TraceFn = void (*)(const void* obj, Tracer& t);
using DestroyFn = void (*)(void* obj);

// Registers a managed type and returns its index (never 0). `trace` is null for a type without
// managed pointers, `destroy` null for a trivially destructible one.
uint16_t register_type(TraceFn trace, DestroyFn destroy, const char* name);
// Zeroed memory for one object of `size` bytes of type `type` (0: pointer-free and trivially
// destructible, which may share a tiny block); `noscan` when the type has no trace(). Never null:
// running out of memory is fatal, as in Go.
void* allocate(size_t size, uint16_t type, bool noscan);
// The largest allocation: Go's maxAlloc on 64-bit Linux (the 48-bit address space). allocate()
// calls a larger request a fatal out-of-memory error, as Go does.
inline constexpr size_t kMaxAlloc = size_t{1} << 48;
// make_array's length check failed: throws std::length_error (Go panics "makeslice: len out of
// range").
[[noreturn]] void throw_len_out_of_range(size_t n, size_t elem_size);
// Forgets the type of an object whose constructor threw: it becomes plain garbage.
void abandon(void* obj) noexcept;
// Marks the object containing p (the slow part of Tracer::visit).
void mark(Tracer& t, const void* p);
// Marks every object that a word of [p, p+n) points into (conservative scan of a closure).
void mark_range(Tracer& t, const void* p, size_t n);
// Write barrier: set while a collection is marking concurrently with the program.
extern std::atomic<bool> write_barrier_enabled;
void write_barrier(void* const* slot, const void* value) noexcept;
// While marking: a traced object just constructed (allocated black) is scanned once, since its
// constructor's stores ran no barrier.
void shade_new_object(const void* obj) noexcept;

void** root_acquire(const void* p) noexcept;
void root_release(void** slot) noexcept;
void root_store(void** slot, const void* p) noexcept;

template <class T>
concept Traceable = requires(const T& v, Tracer& t) { v.trace(t); };

template <class T>
__attribute__((noinline)) uint16_t register_type_of() {
  return register_type(
      Traceable<T> ? +[](const void* o, Tracer& t) {
        if constexpr (Traceable<T>) static_cast<const T*>(o)->trace(t);
      } : TraceFn{nullptr},
      std::is_trivially_destructible_v<T> ? DestroyFn{nullptr} : +[](void* o) { static_cast<T*>(o)->~T(); },
      __PRETTY_FUNCTION__);
}

// T's type id, registered on first use. Not a function-local static with a constructor: its
// guard calls into libstdc++, which with segmented stacks would make every make<T> ask for a
// 1 MiB stack segment. Two threads may both register T on first use: either id describes T.
template <class T>
uint16_t type_index() {
  if constexpr (!Traceable<T> && std::is_trivially_destructible_v<T>) {
    return 0;
  } else {
    static std::atomic<uint16_t> index{0};
    uint16_t i = index.load(std::memory_order_acquire);
    if (i == 0) [[unlikely]] {
      i = register_type_of<T>();
      index.store(i, std::memory_order_release);
    }
    return i;
  }
}
}  // namespace internal

// A traced pointer field of a managed object. Assignment runs the write barrier (one predictable
// branch while no concurrent marking is in progress).
template <class T>
class Ref {
 public:
  Ref() noexcept { init(nullptr); }
  Ref(std::nullptr_t) noexcept { init(nullptr); }
  Ref(T* p) noexcept { init(p); }
  Ref(const Ref& o) noexcept { init(o.p_); }
  Ref& operator=(const Ref& o) { store(o.p_); return *this; }
  Ref& operator=(T* p) { store(p); return *this; }
  Ref& operator=(std::nullptr_t) { store(nullptr); return *this; }

  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  operator T*() const { return p_; }
  friend bool operator==(const Ref& a, const Ref& b) { return a.p_ == b.p_; }
  friend bool operator==(const Ref& a, const T* b) { return a.p_ == b; }
  friend bool operator==(const Ref& a, std::nullptr_t) { return a.p_ == nullptr; }

 private:
  friend class Tracer;
  // Mark workers read the field while its owner may store to it; the write barrier, not a
  // lock, keeps marking right. A store is a release and the marker's load an acquire (plain
  // moves on x86-64): a marker that finds an object through a field sees it constructed, as
  // Go's publication barrier makes a new object's initialization visible before its pointer.
  // A constructor's store is atomic too: a marker may already scan an object still under
  // construction (allocated just before a mark began, or named by a stale word on a stack).
  void init(T* p) { __atomic_store_n(&p_, p, __ATOMIC_RELAXED); }
  void store(T* p) {
    if (internal::write_barrier_enabled.load(std::memory_order_relaxed)) [[unlikely]]
      internal::write_barrier(reinterpret_cast<void* const*>(&p_), p);
    __atomic_store_n(&p_, p, __ATOMIC_RELEASE);
  }
  T* load_for_marking() const { return __atomic_load_n(&p_, __ATOMIC_ACQUIRE); }
  T* p_;
};

// Passed to trace(): visit every managed pointer the object holds, each in a Ref<T> field.
class Tracer {
 public:
  template <class T>
  void visit(const Ref<T>& r) { if (T* p = r.load_for_marking()) internal::mark(*this, p); }
  // A raw T* member is not a traced field: its stores run no write barrier, so the concurrent
  // collector could miss what it points to. Declare the member as gort::Ref<T>.
  template <class T>
  void visit(T* const&) {
    static_assert(sizeof(T) == 0, "gort::Tracer::visit: a raw pointer member is not a traced field; declare it as gort::Ref<T>");
  }

  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

 private:
  friend struct TracerAccess;
  explicit Tracer(void* worker) : worker_(worker) {}
  void* worker_;
};

namespace internal {
template <class T>
inline constexpr bool kIsRef = false;
template <class T>
inline constexpr bool kIsRef<Ref<T>> = true;
template <class T>
concept IsRef = kIsRef<std::remove_cv_t<T>>;

// Element storage of Array<T>: the elements follow the header. Destroys them when T needs it.
template <class T, bool = std::is_trivially_destructible_v<T>>
class alignas(alignof(T) > alignof(size_t) ? alignof(T) : alignof(size_t)) ArrayStorage {
 public:
  size_t size() const { return size_; }
  T* data() { return reinterpret_cast<T*>(this + 1); }
  const T* data() const { return reinterpret_cast<const T*>(this + 1); }

 protected:
  // A marker may scan an array still under construction (see Ref<T>): the size is stored and,
  // by trace(), loaded atomically.
  ArrayStorage() noexcept { set_size(0); }
  void set_size(size_t n) { __atomic_store_n(&size_, n, __ATOMIC_RELAXED); }
  size_t size_;
};
template <class T>
class ArrayStorage<T, false> : public ArrayStorage<T, true> {
 public:
  ~ArrayStorage() {
    for (size_t i = 0; i < this->size_; ++i) this->data()[i].~T();
  }
};
}  // namespace internal

// A managed array of n elements of T (the backing array of a Go slice). Zeroed at creation.
template <class T>
class Array : public internal::ArrayStorage<T> {
 public:
  T& operator[](size_t i) { return this->data()[i]; }
  const T& operator[](size_t i) const { return this->data()[i]; }
  T* begin() { return this->data(); }
  T* end() { return this->data() + this->size_; }

  void trace(Tracer& t) const
    requires(internal::Traceable<T> || internal::IsRef<T>)
  {
    const T* e = this->data();
    for (size_t i = 0, n = __atomic_load_n(&this->size_, __ATOMIC_RELAXED); i < n; ++i) {
      if constexpr (internal::Traceable<T>) e[i].trace(t); else t.visit(e[i]);
    }
  }

 private:
  template <class U>
  friend Array<U>* make_array(size_t n);
  Array() = default;
};

namespace internal {
template <class T>
T* made(T* obj) {
  if constexpr (Traceable<T>) {
    if (write_barrier_enabled.load(std::memory_order_relaxed)) [[unlikely]] shade_new_object(obj);
  }
  return obj;
}
}  // namespace internal

namespace internal {
// T(args...), or T{args...} for an aggregate where the compiler lacks C++20's parenthesized
// aggregate initialization (clang before 16).
template <class T, class... A>
T* construct_at(void* mem, A&&... args) {
  if constexpr (std::is_constructible_v<T, A...>) return ::new (mem) T(std::forward<A>(args)...);
  else return ::new (mem) T{std::forward<A>(args)...};
}
}  // namespace internal

namespace internal {
// Zeroed memory for a T: from the inline path where it applies (internal/alloc.hpp: small objects
// that the tiny allocator does not take; not in ThreadSanitizer builds, whose stops the library's
// critical sections poll for), else from the library.
template <class T>
[[gnu::always_inline]] inline void* allocate_for() {
  uint16_t type = type_index<T>();
  constexpr bool noscan = !Traceable<T>;
  constexpr bool tiny = noscan && std::is_trivially_destructible_v<T> && sizeof(T) < kTinySize;
  if constexpr (kInlineAllocation && !tiny && sizeof(T) <= kMaxInlineSize) {
    if (void* mem = allocate_inline<sizeof(T), noscan>(type)) [[likely]] return mem;
  }
  return allocate(sizeof(T), type, noscan);
}
}  // namespace internal

// Like Go's new(T): T(args...) on the garbage-collected heap. T() is value-initialized; an
// aggregate may be given its members' values, make<Point>(1, 2). Always inlined: the call site
// is the allocation's first frame in heap profiles (and compilers weighed the Ref<T> field
// initializations as too costly to inline it into recursive callers). A constructor that throws
// leaves nothing behind (the slot is abandoned); built with -fno-exceptions, nothing is caught.
template <class T, class... A>
[[gnu::always_inline]] inline T* make(A&&... args) {
  void* mem = internal::allocate_for<T>();
#if defined(__cpp_exceptions)
  if constexpr (!std::is_nothrow_constructible_v<T, A...>) {
    try {
      return internal::made(internal::construct_at<T>(mem, std::forward<A>(args)...));
    } catch (...) {
      internal::abandon(mem);
      throw;
    }
  }
#endif
  return internal::made(internal::construct_at<T>(mem, std::forward<A>(args)...));
}

// A managed array of n value-initialized (zeroed) elements.
template <class T>
Array<T>* make_array(size_t n) {
  static_assert(std::is_default_constructible_v<T>);
  // n * sizeof(T) must neither wrap nor pass the largest allocation: a wrapped size would make a
  // small object whose size() lies.
  if (n > (internal::kMaxAlloc - sizeof(Array<T>)) / sizeof(T)) [[unlikely]]
    internal::throw_len_out_of_range(n, sizeof(T));
  static_assert(!(std::is_pointer_v<T> && internal::Traceable<std::remove_cv_t<std::remove_pointer_t<T>>>),
                "gort::make_array: elements that point to managed objects must be gort::Ref<T>, not T*");
  void* mem = internal::allocate(sizeof(Array<T>) + n * sizeof(T), internal::type_index<Array<T>>(),
                                 !internal::Traceable<Array<T>>);
  auto* a = ::new (mem) Array<T>();
  if constexpr (!std::is_trivially_default_constructible_v<T>) {
    for (size_t i = 0; i < n; ++i) ::new (a->data() + i) T();
  }
  a->set_size(n);
  return internal::made(a);
}

// Keeps its object alive from anywhere: globals, std containers, unattached threads.
template <class T>
class Root {
 public:
  Root() = default;
  Root(T* p) : slot_(p ? internal::root_acquire(p) : nullptr) {}
  Root(const Root& o) : Root(o.get()) {}
  Root(Root&& o) noexcept : slot_(std::exchange(o.slot_, nullptr)) {}
  Root& operator=(const Root& o) { reset(o.get()); return *this; }
  Root& operator=(Root&& o) noexcept {
    if (this != &o) { release(); slot_ = std::exchange(o.slot_, nullptr); }
    return *this;
  }
  Root& operator=(T* p) { reset(p); return *this; }
  ~Root() { release(); }

  void reset(T* p = nullptr) {
    if (slot_ && p) internal::root_store(slot_, p);
    else if (p) slot_ = internal::root_acquire(p);
    else release();
  }
  T* get() const { return slot_ ? static_cast<T*>(*slot_) : nullptr; }
  T* operator->() const { return get(); }
  T& operator*() const { return *get(); }
  explicit operator bool() const { return get() != nullptr; }

 private:
  void release() { if (slot_) internal::root_release(std::exchange(slot_, nullptr)); }
  void** slot_ = nullptr;
};

}  // namespace gort
