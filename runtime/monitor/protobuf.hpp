// The protocol buffers wire format, as much as profile.proto needs: varints, length-delimited
// fields and packed repeated integers. Go's runtime/pprof writes its profiles with an encoder of
// the same size (protobuf.go) rather than a protobuf library; so does gort: six message types,
// no parsing, no schema compiler in the build.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gort::internal {

class ProtoWriter {
 public:
  void uint64(int field, uint64_t v) {
    key(field, 0);
    varint(v);
  }
  void int64(int field, int64_t v) { uint64(field, static_cast<uint64_t>(v)); }
  void uint64_opt(int field, uint64_t v) { if (v) uint64(field, v); }  // proto3: zero is the default
  void int64_opt(int field, int64_t v) { if (v) int64(field, v); }
  void boolean(int field, bool v) { if (v) uint64(field, 1); }
  void bytes(int field, std::string_view v) {
    key(field, 2);
    varint(v.size());
    buf_.append(v);
  }
  void message(int field, const ProtoWriter& m) { bytes(field, m.buf_); }
  template <class T>
  void packed(int field, const std::vector<T>& vs) {
    if (vs.empty()) return;
    ProtoWriter p;
    for (T v : vs) p.varint(static_cast<uint64_t>(v));
    bytes(field, p.buf_);
  }
  const std::string& data() const { return buf_; }

 private:
  void key(int field, int wire_type) { varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type)); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<char>(v));
  }
  std::string buf_;
};

}  // namespace gort::internal
