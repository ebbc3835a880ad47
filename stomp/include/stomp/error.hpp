#pragma once

#include <string>
#include <system_error>

namespace stomp {

// Errors of the frame codec. Every value but need_more is a protocol violation by the peer;
// the parser stays failed after one (STOMP has no resynchronisation point other than a
// new connection).
enum class errc {
  need_more = 1,           // not a failure: feed more bytes
  unknown_command,         // first line is not a STOMP command
  malformed_header,        // header line without ':' or with an empty name
  invalid_escape,          // undefined escape sequence (STOMP 1.2, "Value Encoding")
  invalid_content_length,  // content-length is not a decimal octet count
  missing_frame_end,       // octet after a content-length body is not NUL
  nul_in_header,           // NUL octet inside the command or header section
  frame_too_large,         // exceeds parser_limits::max_frame_bytes
  too_many_headers,        // exceeds parser_limits::max_header_count
  header_line_too_long,    // exceeds parser_limits::max_header_line_bytes
  body_too_large,          // exceeds parser_limits::max_body_bytes
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace stomp

template <>
struct std::is_error_code_enum<stomp::errc> : std::true_type {};
