#pragma once

#include <charconv>
#include <concepts>
#include <optional>
#include <string_view>

namespace stomp {

// A whole string as an unsigned decimal number: digits only (no sign, no spaces, no '+'), and
// nothing past the last digit; nullopt when empty, malformed or over the type's maximum.
// The one number parser of the project: header values (heart-beat, prefetch-count, ack ids,
// x-replay), command-line values and query parameters all mean exactly this. A template
// because callers really need several widths (ports are 16 bits, counts 64).
template <std::unsigned_integral T>
std::optional<T> parse_decimal(std::string_view text) noexcept {
  // from_chars accepts neither a sign nor spaces for unsigned types, so the range check and
  // the "whole string" check are all that is left to do.
  T value{};
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || stop != end) return std::nullopt;
  return value;
}

}  // namespace stomp
