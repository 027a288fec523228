// Numbers and strings written byte for byte as Go writes them, so that what gort's exporters
// print compares equal to a Go program's output (and parses with the same tools):
//   append_go_float    strconv.FormatFloat(v, 'g', -1, 64), as Prometheus' expfmt writes
//                      sample values ("0", "96576", "7.704016e+06", "+Inf", "NaN")
//   append_json_float  encoding/json's float64 ("0.0123", "1e-7", "1e+21")
//   append_json_string encoding/json's string: HTML escaping of <, > and &, U+2028/9 escaped,
//                      each invalid UTF-8 byte written as \ufffd
#pragma once
#include <string>
#include <string_view>

namespace gort::internal {

void append_go_float(std::string& out, double v);
void append_json_float(std::string& out, double v);
void append_json_string(std::string& out, std::string_view s);

}  // namespace gort::internal
