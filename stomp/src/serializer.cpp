#include "stomp/serializer.hpp"

#include <charconv>
#include <cstring>

namespace stomp {
namespace {

constexpr std::string_view content_length_name = "content-length";

bool is_special(char c) noexcept { return c == '\r' || c == '\n' || c == ':' || c == '\\'; }

bool has_special(std::string_view s) noexcept {
  for (const char c : s) {
    if (is_special(c)) return true;
  }
  return false;
}

// Header octets for frames that are not escaped: STOMP 1.0, and CONNECT, STOMP and CONNECTED
// in every version. A raw CR or LF would end the header line early, so they become spaces;
// ':' in a value is kept (the reader splits at the first colon).
void append_unescaped(std::string& out, std::string_view s) {
  std::size_t done = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      out.append(s.data() + done, i - done);
      out.push_back(' ');
      done = i + 1;
    }
  }
  out.append(s.data() + done, s.size() - done);
}

void append_header_text(std::string& out, std::string_view s, version v, bool escape) {
  if (escape) {
    append_escaped(out, s, v);
  } else {
    append_unescaped(out, s);
  }
}

void append_content_length(std::string& out, std::size_t n) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof digits, n);
  out.append(content_length_name);
  out.push_back(':');
  out.append(digits, r.ptr);
  out.push_back('\n');
}

// Whether an unescaped frame can carry a header named `name`. A reader splits a header line
// at its first ':' and ends it at CR or LF, so a name holding one of them would reach it as
// another header: "x-seq:9" with value "1" reads back as x-seq "9:1", a forged second x-seq
// (issue 15). A 1.1/1.2 publisher can send such a name (\c, \n, \r); a value is safe
// (the reader keeps the ':' after the first, and CR/LF become spaces).
bool unescaped_name_ok(std::string_view name) noexcept {
  return name.find_first_of(":\r\n") == std::string_view::npos;
}

// Headers (minus any content-length), the computed content-length, the blank line, the body
// and the NUL: everything after the command line. Unescaped, a header whose name cannot be
// written (unescaped_name_ok) is left out. This is the codec's rule, not the publish path's,
// so it holds for every frame the broker writes to a 1.0 peer (live, stored, replayed, admin
// API, RECEIPT, ERROR) and for journal records stored before it, while 1.1 and 1.2
// subscribers still get the header, escaped.
template <typename Headers>
void append_rest(std::string& out, const Headers& headers, std::string_view body, version v,
                 bool escape) {
  for (const auto& h : headers) {
    if (std::string_view(h.name) == content_length_name) continue;
    if (!escape && !unescaped_name_ok(h.name)) continue;
    append_header_text(out, h.name, v, escape);
    out.push_back(':');
    append_header_text(out, h.value, v, escape);
    out.push_back('\n');
  }
  if (!body.empty()) append_content_length(out, body.size());
  out.push_back('\n');
  out.append(body);
  out.push_back('\0');
}

template <typename Headers>
std::size_t estimate_size(const Headers& headers, std::string_view body) noexcept {
  // Exact unless a header needs escaping: command, EOLs, content-length and NUL fit in 64.
  std::size_t n = 64 + body.size();
  for (const auto& h : headers)
    n += std::string_view(h.name).size() + std::string_view(h.value).size() + 2;
  return n;
}

template <typename Headers>
void serialize_impl(std::string& out, command c, const Headers& headers, std::string_view body,
                    version v) {
  out.reserve(out.size() + estimate_size(headers, body));
  out.append(to_string(c));
  out.push_back('\n');
  append_rest(out, headers, body, v, v != version::v1_0 && escapes_headers(c));
}

}  // namespace

void append_escaped(std::string& out, std::string_view value, version v) {
  if (v == version::v1_0) return append_unescaped(out, value);
  std::size_t done = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (!is_special(c)) continue;
    // STOMP 1.1 has no escape for CR: it is an ordinary octet there and goes out raw. (A
    // reader lenient about CRLF, like ours, drops it when it ends a value.)
    if (c == '\r' && v == version::v1_1) continue;
    out.append(value.data() + done, i - done);
    out.push_back('\\');
    out.push_back(c == '\r' ? 'r' : c == '\n' ? 'n' : c == ':' ? 'c' : '\\');
    done = i + 1;
  }
  out.append(value.data() + done, value.size() - done);
}

void serialize(std::string& out, command c, std::span<const header_view> headers,
               std::string_view body, version v) {
  serialize_impl(out, c, headers, body, v);
}

void serialize(std::string& out, const frame& f, version v) {
  serialize_impl(out, f.command, f.headers, f.body, v);
}

std::string serialize(const frame& f, version v) {
  std::string out;
  serialize(out, f, v);
  return out;
}

shared_message::shared_message(std::span<const header_view> headers, std::string_view body)
    : body_size_(body.size()) {
  bool special = false;  // some octet escapes differently between versions
  bool cr = false;       // 1.1 differs from 1.2 only in CR, which it cannot escape
  for (const header_view& h : headers) {
    if (h.name == content_length_name) continue;
    special = special || has_special(h.name) || has_special(h.value);
    cr = cr || h.name.find('\r') != std::string_view::npos ||
         h.value.find('\r') != std::string_view::npos;
  }
  auto build = [&](version v) {
    auto& s = tails_[static_cast<std::size_t>(v)];
    s.reserve(estimate_size(headers, body));
    append_rest(s, headers, body, v, v != version::v1_0);
  };
  build(version::v1_2);
  if (cr) build(version::v1_1);
  if (special) build(version::v1_0);
}

void shared_message::head(std::string& out, std::string_view subscription, std::string_view ack_id,
                          version v) {
  out.clear();
  out.append("MESSAGE\nsubscription:");
  append_escaped(out, subscription, v);
  out.push_back('\n');
  if (!ack_id.empty()) {
    out.append("ack:");
    append_escaped(out, ack_id, v);
    out.push_back('\n');
  }
}

std::string_view shared_message::tail(version v) const noexcept {
  const auto& t = tails_[static_cast<std::size_t>(v)];
  return t.empty() ? tails_[static_cast<std::size_t>(version::v1_2)] : t;
}

}  // namespace stomp
