#include "auth/base64.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

namespace broker::auth::detail {

namespace {

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view base64url_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view bytes, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16 |
                            std::uint32_t(std::uint8_t(bytes[i + 1])) << 8 |
                            std::uint32_t(std::uint8_t(bytes[i + 2]));
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += alphabet[n >> 6 & 63];
    out += alphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (rest == 2) n |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    if (rest == 2) out += alphabet[n >> 6 & 63];
    if (pad) out.append(3 - rest, '=');
  }
  return out;
}

using decode_table = std::array<std::int8_t, 256>;  // -1: not in the alphabet

constexpr decode_table make_decode_table(std::string_view alphabet) {
  decode_table t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < alphabet.size(); ++i)
    t[std::uint8_t(alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}

constexpr decode_table base64_values = make_decode_table(base64_alphabet);
constexpr decode_table base64url_values = make_decode_table(base64url_alphabet);

// `text` without padding. Strict, so each byte string has exactly one accepted encoding: a
// token cannot be altered in its encoding while keeping its signature valid.
std::optional<std::string> decode(std::string_view text, const decode_table& value) {
  if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (char c : text) {
    const std::int8_t v = value[std::uint8_t(c)];
    if (v < 0) return std::nullopt;
    bits = bits << 6 | std::uint32_t(v);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out += char(bits >> bit_count & 0xff);
    }
  }
  // The 2 or 4 bits left over must be zero; otherwise several texts decode alike.
  if ((bits & ((1u << bit_count) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  return encode(bytes, base64url_alphabet, false);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return decode(text, base64url_values);
}

std::string base64_encode(std::string_view bytes) { return encode(bytes, base64_alphabet, true); }

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  text.remove_suffix(pad);
  // With the padding gone, the length must be exactly what that padding implies; decode()
  // then rejects a stray '=' anywhere else as outside the alphabet.
  if (pad > 0 && text.size() % 4 != 4 - pad) return std::nullopt;
  return decode(text, base64_values);
}

}  // namespace broker::auth::detail
