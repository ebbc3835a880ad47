#pragma once

#include "stomp/error.hpp"
#include "stomp/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace stomp {

// Bounds on what one frame may make the parser buffer. Each is checked as bytes arrive, so
// a peer can never make the parser hold more than max_frame_bytes plus one feed() chunk.
struct parser_limits {
  std::size_t max_frame_bytes = 2 * 1024 * 1024;  // command + headers + body + NUL
  std::size_t max_header_count = 128;
  std::size_t max_header_line_bytes = 8 * 1024;  // one "name:value" line, without EOL
  std::size_t max_body_bytes = 1024 * 1024;
};

// What went wrong and where, for a precise ERROR frame.
struct parse_error {
  std::error_code code;
  std::string header;     // the header involved, if any (already unescaped where possible)
  std::size_t limit = 0;  // the limit exceeded, for the *_too_* codes
  // The offending octets where the code alone does not say: the escape sequence as sent (a
  // backslash and the octet after it), the unknown command, the content-length value. Raw;
  // message() makes them printable.
  std::string detail;

  // "header line too long (limit 8192 bytes): header 'destination'"
  std::string message() const;
};

// Incremental push parser for a stream of STOMP frames (STOMP 1.0, 1.1, 1.2).
//
// Bytes go in with feed() (or prepare()/commit() to read straight into the parser's buffer);
// frames come out of next(), one per call, independent of how the stream was chunked.
// Accepts LF and CRLF line endings, EOL heart-beats between frames, bodies delimited by
// content-length (may contain NUL) or by the first NUL. Header values are unescaped in place,
// so a parsed frame costs no allocation once the buffers have grown to the working size.
//
// Not thread-safe: one parser per connection, used only on the thread that connection lives on.
class parser {
 public:
  explicit parser(parser_limits limits = {});

  // The negotiated version decides which escapes are defined. Default: 1.2. CONNECT, STOMP
  // and CONNECTED are never unescaped whatever the version.
  void set_version(stomp::version v) noexcept { version_ = v; }
  stomp::version version() const noexcept { return version_; }
  const parser_limits& limits() const noexcept { return limits_; }

  // Appends bytes to the stream. Limits are checked by next(), so drain it (until need_more)
  // between feeds to keep the buffer within max_frame_bytes plus one chunk. Ignored once the
  // parser has failed.
  void feed(std::string_view bytes);

  // Zero-copy input: prepare() returns writable space of at least `n` bytes at the end of the
  // buffer, commit(k) appends the first k bytes written there.
  std::span<char> prepare(std::size_t n);
  void commit(std::size_t n) noexcept;

  // Bytes of buffer held, and giving it back: shrink(keep) frees the buffer when it is larger
  // than `keep` and holds no byte of an unfinished frame (views of frames already returned
  // are then invalid); the next prepare() or feed() allocates what it needs. For idle
  // connections, which should not each hold a read buffer sized for a busy one.
  std::size_t capacity() const noexcept { return capacity_; }
  void shrink(std::size_t keep) noexcept;

  // Parses the next complete frame. Returns an empty error_code and fills `out`, or
  // errc::need_more when the buffered bytes hold no complete frame (not a failure), or
  // another errc on a protocol violation, after which every call returns that error
  // (see error()).
  std::error_code next(frame_view& out);

  // The failure reported by next(), with details; empty code while healthy.
  const parse_error& error() const noexcept { return error_; }

  // Count of EOL heart-beats consumed between frames since construction.
  std::size_t heartbeats() const noexcept { return heartbeats_; }

  // Bytes received but not yet returned as part of a frame.
  std::size_t buffered_bytes() const noexcept { return end_ - begin_; }

 private:
  enum class state : std::uint8_t {
    command,  // before or inside the command line; empty lines here are heart-beats
    headers,  // command parsed, header lines arriving
    body,     // head parsed (headers_ filled), waiting for the body and its NUL
    failed,   // error_ is set; sticky
  };

  std::error_code fail(errc e, std::string_view header = {}, std::size_t limit = 0,
                       std::string_view detail = {});
  std::error_code fail_in_line(errc e, std::size_t at);
  std::error_code scan_head();
  std::error_code parse_header_line(std::size_t begin, std::size_t end);
  std::error_code scan_body(frame_view& out);
  std::size_t frame_limit_position() const noexcept;
  bool unescapes() const noexcept;
  void reserve(std::size_t n);
  void relocate(char* new_base) noexcept;

  parser_limits limits_;
  stomp::version version_ = stomp::version::v1_2;
  state state_ = state::command;
  // Stream bytes; [begin_, end_) not yet returned. A raw array rather than a vector: growing
  // it must not zero-fill bytes that feed()/commit() overwrite anyway.
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;       // start of the current frame (after heart-beats)
  std::size_t end_ = 0;         // end of received bytes
  std::size_t line_begin_ = 0;  // start of the head line being scanned
  // Where scanning resumes: every byte in [begin_, scan_) has been checked once, so feeding
  // one byte at a time costs the same total work as one big chunk.
  std::size_t scan_ = 0;
  std::size_t body_begin_ = 0;
  std::size_t content_length_ = 0;
  bool has_content_length_ = false;
  stomp::command command_{};
  std::vector<header_view> headers_;  // reused across frames; views into buf_
  parse_error error_;
  std::size_t heartbeats_ = 0;
};

}  // namespace stomp
