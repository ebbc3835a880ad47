#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stomp {

// Protocol versions this codec speaks. They differ only in header value escaping:
// 1.0 has none, 1.1 escapes \n \c \\, 1.2 adds \r (STOMP 1.2, "Value Encoding").
enum class version : std::uint8_t { v1_0, v1_1, v1_2 };

std::string_view to_string(version v) noexcept;  // "1.0", "1.1", "1.2"

enum class command : std::uint8_t {
  // client frames
  connect,
  stomp,
  send,
  subscribe,
  unsubscribe,
  ack,
  nack,
  begin,
  commit,
  abort,
  disconnect,
  // server frames
  connected,
  message,
  receipt,
  error,
};

std::string_view to_string(command c) noexcept;  // the wire name, e.g. "SEND"
std::optional<command> parse_command(std::string_view name) noexcept;

// CONNECT, STOMP and CONNECTED never escape header values (STOMP 1.2, "Value Encoding").
constexpr bool escapes_headers(command c) noexcept {
  return c != command::connect && c != command::stomp && c != command::connected;
}

struct header_view {
  std::string_view name;
  std::string_view value;
};

// Returns the value of the first header called `name`: when a header is repeated the first
// occurrence wins (STOMP 1.2, "Repeated Header Entries").
std::optional<std::string_view> find_header(std::span<const header_view> headers,
                                            std::string_view name) noexcept;

// A parsed frame. Views point into the parser's buffer and stay valid until the next call to
// parser::feed(), parser::prepare() or parser::next(). Header values are already unescaped.
struct frame_view {
  stomp::command command{};
  std::span<const header_view> headers;
  std::string_view body;

  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
};

struct header {
  std::string name;
  std::string value;
  friend bool operator==(const header&, const header&) = default;
};

// An owning frame, for building frames to send and for keeping a parsed one.
struct frame {
  stomp::command command{};
  std::vector<stomp::header> headers;  // in wire order; duplicates allowed, the first wins
  std::string body;                    // binary-safe

  frame() = default;
  frame(stomp::command c, std::vector<stomp::header> h = {}, std::string b = {})
      : command(c), headers(std::move(h)), body(std::move(b)) {}
  explicit frame(const frame_view& v);

  std::optional<std::string_view> header(std::string_view name) const noexcept;

  friend bool operator==(const frame&, const frame&) = default;
};

}  // namespace stomp
