#include "engine/redis/live_channel.hpp"

#include "stomp/decimal.hpp"
#include "storage/header_codec.hpp"

#include <fmt/format.h>

namespace broker::redis {

std::string live_channel(std::string_view key_prefix, std::string_view destination) {
  return fmt::format("{{{}{}}}:live", key_prefix, destination);
}

std::string encode_live(const live_message& m) {
  std::string headers;
  storage::encode_headers(m.headers, headers);
  auto out = fmt::format("{} {} {}\n", m.origin, m.id, headers.size());
  out += headers;
  out += m.body;
  return out;
}

std::optional<live_message> parse_live(std::string_view payload) {
  const auto eol = payload.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  const std::string_view head = payload.substr(0, eol);
  const auto sp1 = head.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : head.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1) return std::nullopt;
  const auto header_bytes = stomp::parse_decimal<std::size_t>(head.substr(sp2 + 1));
  const auto rest = payload.substr(eol + 1);
  if (!header_bytes || *header_bytes > rest.size()) return std::nullopt;
  live_message m;
  m.origin = std::string(head.substr(0, sp1));
  m.id = std::string(head.substr(sp1 + 1, sp2 - sp1 - 1));
  m.headers = storage::decode_headers(rest.substr(0, *header_bytes));
  m.body = std::string(rest.substr(*header_bytes));
  return m;
}

}  // namespace broker::redis
