#include "runtime/monitor/goformat.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace gort::internal {

namespace {

// The shortest digits that read back as v (Go's and C++'s shortest formatting agree: both give
// the shortest round-trip representation), in one of the two notations.
std::string_view shortest(char (&buf)[64], double v, std::chars_format fmt) {
  auto r = std::to_chars(buf, buf + sizeof buf, v, fmt);
  return {buf, static_cast<size_t>(r.ptr - buf)};
}

// The decimal exponent of a scientific-notation string ("7.704016e+06" -> 6).
int exponent_of(std::string_view sci) {
  size_t e = sci.find('e') + 1;
  if (sci[e] == '+') ++e;  // from_chars takes a '-' but no '+'
  int exp = 0;
  std::from_chars(sci.data() + e, sci.data() + sci.size(), exp);
  return exp;
}

}  // namespace

void append_go_float(std::string& out, double v) {
  if (std::isnan(v)) { out += "NaN"; return; }
  if (std::isinf(v)) { out += v > 0 ? "+Inf" : "-Inf"; return; }
  if (v == 0) { out += '0'; return; }  // also -0, as expfmt writes it
  char buf[64];
  std::string_view sci = shortest(buf, v, std::chars_format::scientific);
  int exp = exponent_of(sci);
  // strconv's 'g' with the shortest precision: %e when the exponent is < -4 or >= 6 (both
  // write at least two exponent digits, as C++'s scientific form does), else %f.
  if (exp < -4 || exp >= 6) { out += sci; return; }
  out += shortest(buf, v, std::chars_format::fixed);
}

void append_json_float(std::string& out, double v) {
  // encoding/json: %f unless |v| < 1e-6 or >= 1e21 (then %e with "e-07" shortened to "e-7").
  // Infinities and NaN make Go's encoder fail; MemStats has none, so they are written as null.
  if (!std::isfinite(v)) { out += "null"; return; }
  double a = std::fabs(v);
  char buf[64];
  if (a != 0 && (a < 1e-6 || a >= 1e21)) {
    std::string sci(shortest(buf, v, std::chars_format::scientific));
    size_t n = sci.size();
    if (n >= 4 && sci[n - 4] == 'e' && sci[n - 3] == '-' && sci[n - 2] == '0') sci.erase(n - 2, 1);
    out += sci;
    return;
  }
  out += shortest(buf, v, std::chars_format::fixed);
}

namespace {
// The length of the valid UTF-8 sequence at s[i] (1-4), or 0 if the bytes there are not one
// (overlong forms, surrogates and code points past U+10FFFF are invalid, as in Go's utf8).
size_t utf8_length(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c < 0x80) { *cp = c; return 1; }
  if (c >= 0xC2 && c <= 0xDF && cont(1)) { *cp = (c & 0x1Fu) << 6 | (b(1) & 0x3F); return 2; }
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    *cp = (c & 0x0Fu) << 12 | (b(1) & 0x3Fu) << 6 | (b(2) & 0x3F);
    return *cp >= 0x800 && (*cp < 0xD800 || *cp > 0xDFFF) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    *cp = (c & 0x07u) << 18 | (b(1) & 0x3Fu) << 12 | (b(2) & 0x3Fu) << 6 | (b(3) & 0x3F);
    return *cp >= 0x10000 && *cp <= 0x10FFFF ? 4 : 0;
  }
  return 0;
}
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_length(s, i, &cp);
    if (n == 0) {  // an invalid byte: Go writes the replacement character
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {  // JavaScript line separators, escaped as Go does
      out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else if (n > 1) {
      out.append(s.substr(i, n));
    } else {
      switch (cp) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&') {
            out += "\\u00";
            out += kHex[cp >> 4];
            out += kHex[cp & 15];
          } else {
            out += static_cast<char>(cp);
          }
      }
    }
    i += n;
  }
  out += '"';
}

}  // namespace gort::internal
