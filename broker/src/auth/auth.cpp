#include "auth/auth.hpp"

#include <array>
#include <utility>

namespace broker::auth {

namespace detail {
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

std::optional<std::string> expand_user(std::string_view pattern, std::string_view user) {
  constexpr std::string_view placeholder = "{user}";
  if (pattern.find(placeholder) == std::string_view::npos) return std::string(pattern);
  if (!is_placeholder_safe(user)) return std::nullopt;
  std::string out;
  out.reserve(pattern.size() + user.size());
  for (std::size_t i = 0;;) {
    const std::size_t at = pattern.find(placeholder, i);
    out.append(pattern.substr(i, at - i));
    if (at == std::string_view::npos) break;
    out.append(user);
    i = at + placeholder.size();
  }
  return out;
}

bool has_unknown_placeholder(std::string_view pattern) noexcept {
  constexpr std::string_view placeholder = "{user}";
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.substr(i, placeholder.size()) == placeholder) {
      i += placeholder.size() - 1;
    } else if (pattern[i] == '{' || pattern[i] == '}') {
      return true;
    }
  }
  return false;
}

}  // namespace detail

bool is_placeholder_safe(std::string_view user) noexcept {
  return !user.empty() && user.find_first_of("./*") == std::string_view::npos;
}

permissions permissions::all() {
  permissions p;
  p.all_ = true;
  return p;
}

permissions::entry_ptr permissions::make_entry(destination_pattern pattern) {
  const std::string& text = pattern.text();
  const std::size_t star = text.find('*');
  // destination_pattern only accepts '*' as a whole segment, so the first '*' starts the
  // first wildcard segment. The tokens before it are literal and must match the destination's
  // first tokens exactly, separators included, so the destination starts with their text. The
  // separator before the wildcard is left out: "**" may match no segment at all.
  const bool literal = star == std::string::npos;
  const std::size_t prefix = literal ? text.size() : (star == 0 ? 0 : star - 1);
  return std::make_shared<const entry>(entry{std::move(pattern), prefix, literal});
}

bool permissions::allows(action a, std::string_view destination) const {
  if (all_) return true;
  for (const auto& e : list(a)) {
    const std::string& text = e->pattern.text();
    if (e->literal) {
      if (destination == text) return true;
    } else if (destination.starts_with(std::string_view(text).substr(0, e->prefix_bytes)) &&
               e->pattern.matches(destination)) {
      return true;
    }
  }
  return false;
}

void permissions::add(action a, destination_pattern pattern) {
  list(a).push_back(make_entry(std::move(pattern)));
}

void permissions::merge(const permissions& other) {
  all_ = all_ || other.all_;
  subscribe_.insert(subscribe_.end(), other.subscribe_.begin(), other.subscribe_.end());
  send_.insert(send_.end(), other.send_.begin(), other.send_.end());
}

std::vector<std::string> permissions::patterns(action a) const {
  std::vector<std::string> out;
  if (all_) out.push_back("**");
  for (const auto& e : list(a)) out.push_back(e->pattern.text());
  return out;
}

}  // namespace broker::auth
