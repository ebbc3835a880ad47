#include "round_trip.hpp"

#include "stomp/parser.hpp"
#include "stomp/serializer.hpp"

#include <cstdio>
#include <string_view>
#include <system_error>

namespace stompd_test {
namespace {

// Bytes as a C string literal would spell them, so a mismatch shows CR, LF and NUL.
std::string printable(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

std::string describe(const stomp::frame& f) {
  std::string out(stomp::to_string(f.command));
  for (const stomp::header& h : f.headers)
    out += " \"" + printable(h.name) + "\":\"" + printable(h.value) + "\"";
  out += " body \"" + printable(f.body) + "\"";
  return out;
}

}  // namespace

stomp::frame expected_round_trip(const stomp::frame& f, stomp::version v) {
  const bool raw = v == stomp::version::v1_0 || !stomp::escapes_headers(f.command);
  auto fix = [&](std::string s) {
    if (raw) {
      for (char& c : s) {
        if (c == '\r' || c == '\n') c = ' ';
      }
    }
    return s;
  };
  auto fix_value = [&](std::string s) {
    s = fix(std::move(s));
    if (v == stomp::version::v1_1 && !s.empty() && s.back() == '\r') s.pop_back();
    return s;
  };
  stomp::frame out(f.command, {}, f.body);
  for (const stomp::header& h : f.headers) {
    // Unescaped, a name with ':', CR or LF cannot be written: the serializer leaves it out.
    if (raw && h.name.find_first_of(":\r\n") != std::string::npos) continue;
    if (h.name != "content-length") out.headers.push_back({fix(h.name), fix_value(h.value)});
  }
  if (!f.body.empty()) out.headers.push_back({"content-length", std::to_string(f.body.size())});
  return out;
}

std::string round_trip_mismatch(const stomp::frame& f, stomp::version v) {
  const std::string bytes = stomp::serialize(f, v);
  const std::string in =
      std::string(" in ") + std::string(stomp::to_string(v)) + " from \"" + printable(bytes) + "\"";
  stomp::parser p;
  p.set_version(v);
  p.feed(bytes);
  stomp::frame_view view;
  if (const std::error_code ec = p.next(view))
    return "no frame parsed" + in + ": " + p.error().message();
  const stomp::frame back(view);
  const stomp::frame expected = expected_round_trip(f, v);
  if (back != expected) return "parsed " + describe(back) + ", expected " + describe(expected) + in;
  if (p.next(view) != stomp::errc::need_more) return "more than one frame" + in;
  if (p.buffered_bytes() != 0)
    return std::to_string(p.buffered_bytes()) + " bytes left buffered" + in;
  return {};
}

}  // namespace stompd_test
