#include "stomp/parser.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

namespace stomp {
namespace {

constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

// "UNSUBSCRIBE", the longest command: a longer command line fails as soon as it is longer,
// instead of being buffered up to the header line limit.
constexpr std::size_t max_command_bytes = 11;

constexpr std::size_t min_capacity = 256;

// How much of an offending name or value an error keeps: enough to recognise it in a log or
// an ERROR frame, too little to echo a peer's megabyte back at it.
constexpr std::size_t max_error_bytes = 256;
constexpr std::size_t max_message_bytes = 64;

// Limits may be "unlimited" (SIZE_MAX); positions derived from them must not wrap.
std::size_t add_sat(std::size_t a, std::size_t b) noexcept { return b > npos - a ? npos : a + b; }

// Position of the first `c` in base[first, last), or npos.
std::size_t find(const char* base, std::size_t first, std::size_t last, char c) noexcept {
  if (first >= last) return npos;
  const void* p = std::memchr(base + first, c, last - first);
  return p ? static_cast<std::size_t>(static_cast<const char*>(p) - base) : npos;
}

struct unescape_result {
  std::size_t size;        // octets written; on failure, the unescaped prefix
  std::size_t bad = npos;  // on failure, input offset of the backslash that starts the sequence
};

// Undoes STOMP 1.2 "Value Encoding" (1.1 lacks \r) on s[0, n) in place: the output is never
// longer than the input, so the parser's buffer holds the result and no allocation is needed.
unescape_result unescape(char* s, std::size_t n, bool allow_cr) noexcept {
  char* bs = static_cast<char*>(std::memchr(s, '\\', n));
  if (bs == nullptr) return {n};
  char* out = bs;
  const char* in = bs;
  const char* const end = s + n;
  while (in < end) {
    if (*in != '\\') {
      *out++ = *in++;
      continue;
    }
    char c = 0;
    switch (in + 1 < end ? in[1] : 0) {
      case 'n':
        c = '\n';
        break;
      case 'c':
        c = ':';
        break;
      case '\\':
        c = '\\';
        break;
      case 'r':
        if (allow_cr) {
          c = '\r';
          break;
        }
        [[fallthrough]];
      default:
        return {static_cast<std::size_t>(out - s), static_cast<std::size_t>(in - s)};
    }
    *out++ = c;
    in += 2;
  }
  return {static_cast<std::size_t>(out - s)};
}

// The name as far as it can be unescaped: the unescaped prefix plus the raw rest. Used for
// error reports only, on a copy.
std::string unescape_for_report(std::string_view raw, bool allow_cr) {
  std::string s(raw.substr(0, max_error_bytes));
  const unescape_result r = unescape(s.data(), s.size(), allow_cr);
  if (r.bad == npos) {
    s.resize(r.size);
  } else {
    s.erase(r.size, r.bad - r.size);
  }
  return s;
}

// Octets of an escape sequence as sent: the backslash and the octet after it, if any.
std::string_view escape_sequence(const char* s, std::size_t n, std::size_t bad) noexcept {
  return {s + bad, std::min<std::size_t>(2, n - bad)};
}

// Peer-supplied octets made safe for a log line or an ERROR frame's message header.
std::string printable(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_message_bytes) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        }
    }
  }
  return out;
}

}  // namespace

std::string parse_error::message() const {
  if (!code) return "no error";
  if (code.category() != error_category()) return code.message();
  const std::string limit_text = std::to_string(limit);
  std::string m;
  switch (static_cast<errc>(code.value())) {
    case errc::unknown_command:
      m = "unknown command '" + printable(detail) + "'";
      break;
    case errc::malformed_header:
      // The header field holds the whole line when it has no ':'; an empty one means the
      // line started with ':'.
      return header.empty() ? "malformed header line (empty header name)"
                            : "malformed header line (no ':'): '" + printable(header) + "'";
    case errc::invalid_escape:
      return "invalid escape sequence '" + printable(detail) + "' in header '" + printable(header) +
             "'";
    case errc::invalid_content_length:
      return "invalid content-length '" + printable(detail) + "'";
    case errc::missing_frame_end:
      return "missing NUL after the body (content-length " + printable(detail) + ")";
    case errc::nul_in_header:
      m = "NUL octet in the command or header lines";
      break;
    case errc::frame_too_large:
      m = "frame too large (limit " + limit_text + " bytes)";
      break;
    case errc::too_many_headers:
      m = "too many headers (limit " + limit_text + ")";
      break;
    case errc::header_line_too_long:
      m = "header line too long (limit " + limit_text + " bytes)";
      break;
    case errc::body_too_large:
      m = "body too large (limit " + limit_text + " bytes)";
      if (!detail.empty()) return m + ": content-length " + printable(detail);
      break;
    default:
      m = code.message();
  }
  if (!header.empty()) m += ": header '" + printable(header) + "'";
  return m;
}

parser::parser(parser_limits limits) : limits_(limits) {}

void parser::feed(std::string_view bytes) {
  if (state_ == state::failed || bytes.empty()) return;
  reserve(bytes.size());
  std::memcpy(buf_.get() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

std::span<char> parser::prepare(std::size_t n) {
  reserve(n);
  return {buf_.get() + end_, capacity_ - end_};
}

void parser::shrink(std::size_t keep) noexcept {
  if (capacity_ <= keep || begin_ != end_ || state_ != state::command) return;
  buf_.reset();
  capacity_ = 0;
  begin_ = end_ = line_begin_ = scan_ = 0;
}

void parser::commit(std::size_t n) noexcept {
  assert(n <= capacity_ - end_);
  if (state_ == state::failed) return;
  end_ += std::min(n, capacity_ - end_);
}

std::error_code parser::next(frame_view& out) {
  if (state_ == state::failed) return error_.code;
  if (state_ != state::body) {
    if (std::error_code ec = scan_head()) return ec;
  }
  return scan_body(out);
}

bool parser::unescapes() const noexcept {
  return version_ != stomp::version::v1_0 && escapes_headers(command_);
}

// The first octet at which the frame, still incomplete, is known to exceed max_frame_bytes:
// it then holds max_frame_bytes octets and still lacks at least its NUL.
std::size_t parser::frame_limit_position() const noexcept {
  const std::size_t p = add_sat(begin_, limits_.max_frame_bytes);
  return std::max(p == 0 ? 0 : p - 1, scan_);
}

// Finds the end of the head line by line, parsing each line as its EOL arrives, so no octet
// is looked at twice however the stream is chunked.
//
// Every check fires at a definite octet (a NUL, the first octet past a length limit, the EOL
// of a line): when several would fire within the bytes at hand, the earliest wins, ties in a
// fixed order. So the error, not only the frames, is independent of the chunking.
std::error_code parser::scan_head() {
  char* const base = buf_.get();
  while (scan_ < end_) {
    const bool in_command = state_ == state::command;
    const std::size_t nl = find(base, scan_, end_, '\n');
    const std::size_t line_end = nl == npos ? end_ : nl;

    std::size_t at = find(base, scan_, line_end, '\0');
    errc e = errc::nul_in_header;
    // A line is too long at its first octet past the limit, unless that octet is the CR of
    // a CRLF, which is not part of the line.
    std::size_t too_long =
        add_sat(line_begin_, in_command ? max_command_bytes : limits_.max_header_line_bytes);
    if (too_long < line_end && base[too_long] == '\r') ++too_long;
    if (too_long < line_end && too_long < at) {
      at = too_long;
      e = in_command ? errc::unknown_command : errc::header_line_too_long;
    }
    const std::size_t too_large = frame_limit_position();
    if (too_large < line_end && too_large < at) {
      return fail(errc::frame_too_large, {}, limits_.max_frame_bytes);
    }
    if (at != npos) return fail_in_line(e, at);
    if (nl == npos) {
      scan_ = end_;
      break;
    }

    // Leniency: a CR before the LF is stripped in every version, though only STOMP 1.2
    // defines CRLF as an EOL; 1.0 and 1.1 clients send it anyway. The price: in 1.0 and
    // 1.1, where CR is an ordinary octet, a header value cannot end in CR.
    std::size_t content_end = nl;
    if (content_end > line_begin_ && base[content_end - 1] == '\r') --content_end;
    const bool blank = content_end == line_begin_;

    if (in_command) {
      if (blank) {
        // An EOL where a command should start is a heart-beat (STOMP 1.2, "Heart-beating"),
        // as are the EOLs a frame's NUL may be followed by.
        ++heartbeats_;
        begin_ = line_begin_ = scan_ = nl + 1;
        continue;
      }
      const std::string_view name(base + line_begin_, content_end - line_begin_);
      const std::optional<stomp::command> c = parse_command(name);
      if (!c) return fail(errc::unknown_command, {}, 0, name);
      command_ = *c;
      state_ = state::headers;
      headers_.clear();
      has_content_length_ = false;
      content_length_ = 0;
    } else if (blank) {
      if (too_large <= nl) return fail(errc::frame_too_large, {}, limits_.max_frame_bytes);
      body_begin_ = nl + 1;
      if (has_content_length_) {
        // Saturated means no buffer could hold it, whatever the limit ("unlimited" included);
        // past this check body_begin_ + content_length_ cannot wrap.
        const std::size_t frame_bytes = add_sat(body_begin_ - begin_, add_sat(content_length_, 1));
        if (frame_bytes > limits_.max_frame_bytes || add_sat(frame_bytes, begin_) == npos) {
          return fail(errc::frame_too_large, {}, limits_.max_frame_bytes);
        }
      }
      state_ = state::body;
      line_begin_ = scan_ = body_begin_;
      return {};
    } else {
      if (headers_.size() >= limits_.max_header_count) {
        return fail_in_line(errc::too_many_headers, content_end);
      }
      if (std::error_code ec = parse_header_line(line_begin_, content_end)) return ec;
    }
    if (too_large <= nl) return fail(errc::frame_too_large, {}, limits_.max_frame_bytes);
    line_begin_ = scan_ = nl + 1;
  }
  return errc::need_more;
}

std::error_code parser::parse_header_line(std::size_t begin, std::size_t end) {
  char* const line = buf_.get() + begin;
  const std::size_t size = end - begin;
  // Split at the first ':'. Further colons belong to the value: 1.1+ requires them escaped,
  // but unescaped ones are common in the wild (URLs, times) and unambiguous.
  char* const colon = static_cast<char*>(std::memchr(line, ':', size));
  if (colon == nullptr) {
    return fail(errc::malformed_header, {line, std::min(size, max_error_bytes)});
  }
  std::size_t name_size = static_cast<std::size_t>(colon - line);
  if (name_size == 0) return fail(errc::malformed_header);
  char* const value = colon + 1;
  std::size_t value_size = size - name_size - 1;

  if (unescapes() && std::memchr(line, '\\', size) != nullptr) {
    const bool allow_cr = version_ == stomp::version::v1_2;
    const unescape_result n = unescape(line, name_size, allow_cr);
    if (n.bad != npos) {
      std::string name(line, n.size);
      name.append(line + n.bad, std::min(name_size - n.bad, max_error_bytes));
      return fail(errc::invalid_escape, name, 0, escape_sequence(line, name_size, n.bad));
    }
    name_size = n.size;
    const unescape_result v = unescape(value, value_size, allow_cr);
    if (v.bad != npos) {
      return fail(errc::invalid_escape, {line, std::min(name_size, max_error_bytes)}, 0,
                  escape_sequence(value, value_size, v.bad));
    }
    value_size = v.size;
  }

  const std::string_view name(line, name_size);
  const std::string_view val(value, value_size);
  headers_.push_back({name, val});

  // The first content-length wins, like every repeated header (STOMP 1.2, "Repeated Header
  // Entries").
  if (!has_content_length_ && name == "content-length") {
    has_content_length_ = true;
    const std::string_view shown = val.substr(0, max_error_bytes);
    if (val.empty()) return fail(errc::invalid_content_length, name, 0, shown);
    std::size_t n = 0;
    for (const char c : val) {
      if (c < '0' || c > '9') return fail(errc::invalid_content_length, name, 0, shown);
      const auto digit = static_cast<std::size_t>(c - '0');
      // Saturate: any count past the body limit is rejected the same way.
      n = n > (npos - digit) / 10 ? npos : n * 10 + digit;
    }
    // Checked here, not when the body arrives: a peer announcing a huge body is stopped
    // before it sends a byte of it.
    if (n > limits_.max_body_bytes) {
      return fail(errc::body_too_large, name, limits_.max_body_bytes, shown);
    }
    content_length_ = n;
  }
  return {};
}

std::error_code parser::scan_body(frame_view& out) {
  char* const base = buf_.get();
  std::size_t body_end = 0;
  if (has_content_length_) {
    body_end = body_begin_ + content_length_;
    if (end_ <= body_end) return errc::need_more;
    if (base[body_end] != '\0') {
      return fail(errc::missing_frame_end, "content-length", 0, std::to_string(content_length_));
    }
  } else {
    // No content-length: the body ends at the first NUL (STOMP 1.2, "Body").
    const std::size_t nul = find(base, scan_, end_, '\0');
    const std::size_t data_end = nul == npos ? end_ : nul;
    const std::size_t too_big = add_sat(body_begin_, limits_.max_body_bytes);
    const std::size_t too_large = frame_limit_position();
    if (too_big < data_end && too_big <= too_large) {
      return fail(errc::body_too_large, {}, limits_.max_body_bytes);
    }
    if (too_large < data_end) return fail(errc::frame_too_large, {}, limits_.max_frame_bytes);
    if (nul == npos) {
      scan_ = end_;
      return errc::need_more;
    }
    body_end = nul;
  }
  out.command = command_;
  out.headers = headers_;
  out.body = {base + body_begin_, body_end - body_begin_};
  // The frame's bytes stay where they are until feed() or prepare() needs the room, so the
  // views in `out` remain valid and many frames in one chunk cost no memmove each.
  begin_ = line_begin_ = scan_ = body_end + 1;
  state_ = state::command;
  return {};
}

std::error_code parser::fail(errc e, std::string_view header, std::size_t limit,
                             std::string_view detail) {
  error_.code = e;
  error_.header.assign(header);
  error_.limit = limit;
  error_.detail.assign(detail);
  state_ = state::failed;
  headers_.clear();
  return error_.code;
}

// Reports a check that fired at octet `at` of the current head line, naming the header as
// far as it arrived.
std::error_code parser::fail_in_line(errc e, std::size_t at) {
  const char* const base = buf_.get();
  const std::string_view seen(base + line_begin_, at - line_begin_);
  std::size_t limit = 0;
  if (e == errc::header_line_too_long) limit = limits_.max_header_line_bytes;
  if (e == errc::too_many_headers) limit = limits_.max_header_count;
  if (state_ == state::command) {
    return fail(e, {}, limit, seen.substr(0, max_error_bytes));
  }
  const std::string_view name = seen.substr(0, seen.find(':'));
  return fail(e,
              unescapes() ? unescape_for_report(name, version_ == stomp::version::v1_2)
                          : std::string(name.substr(0, max_error_bytes)),
              limit);
}

// Makes room for n more bytes after end_. Compaction is lazy: the unconsumed tail moves to
// the front only when the free space at the end runs out, so a chunk of many small frames
// costs one memmove at most, not one per frame.
void parser::reserve(std::size_t n) {
  if (begin_ == end_ && state_ == state::command) begin_ = end_ = line_begin_ = scan_ = 0;
  if (capacity_ - end_ >= n) return;
  const std::size_t live = end_ - begin_;
  char* const base = buf_.get();
  if (begin_ > 0 && capacity_ - live >= n) {
    std::memmove(base, base + begin_, live);
    relocate(base);
    return;
  }
  // Double for amortised growth, but past max_frame_bytes plus the chunk only when the
  // caller buffers several frames without draining next().
  std::size_t want = std::max(capacity_ * 2, min_capacity);
  if (live <= limits_.max_frame_bytes) {
    want = std::min(want, add_sat(limits_.max_frame_bytes, n));
  }
  want = std::max(want, live + n);
  auto fresh = std::make_unique_for_overwrite<char[]>(want);
  if (live > 0) std::memcpy(fresh.get(), base + begin_, live);
  relocate(fresh.get());
  buf_ = std::move(fresh);
  capacity_ = want;
}

// Rebases every offset and view after the bytes [begin_, end_) moved to new_base[0, live).
// Called while the old buffer is still alive, so the old views can be turned into offsets.
void parser::relocate(char* new_base) noexcept {
  const char* const old_base = buf_.get();
  if (state_ == state::headers || state_ == state::body) {
    auto move = [&](std::string_view s) {
      return std::string_view(new_base + (s.data() - old_base) - begin_, s.size());
    };
    for (header_view& h : headers_) {
      h.name = move(h.name);
      h.value = move(h.value);
    }
  }
  end_ -= begin_;
  line_begin_ -= begin_;
  scan_ -= begin_;
  body_begin_ = body_begin_ >= begin_ ? body_begin_ - begin_ : 0;
  begin_ = 0;
}

}  // namespace stomp
