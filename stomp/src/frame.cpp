#include "stomp/frame.hpp"

#include <algorithm>
#include <array>

namespace stomp {
namespace {

// Indexed by the enumerator value; the order must match `enum class command`.
constexpr std::array<std::string_view, 15> command_names = {
    "CONNECT", "STOMP", "SEND",       "SUBSCRIBE", "UNSUBSCRIBE", "ACK",     "NACK",  "BEGIN",
    "COMMIT",  "ABORT", "DISCONNECT", "CONNECTED", "MESSAGE",     "RECEIPT", "ERROR",
};
static_assert(static_cast<std::size_t>(command::error) + 1 == command_names.size());

}  // namespace

std::string_view to_string(version v) noexcept {
  switch (v) {
    case version::v1_0:
      return "1.0";
    case version::v1_1:
      return "1.1";
    case version::v1_2:
      return "1.2";
  }
  return "?";
}

std::string_view to_string(command c) noexcept {
  const auto i = static_cast<std::size_t>(c);
  return i < command_names.size() ? command_names[i] : std::string_view("?");
}

std::optional<command> parse_command(std::string_view name) noexcept {
  // Runs once per received frame: dispatch on the first octet so a lookup costs one or two
  // comparisons instead of a walk over all fifteen names.
  if (name.empty()) return std::nullopt;
  auto match = [&](command c) -> std::optional<command> {
    if (name == command_names[static_cast<std::size_t>(c)]) return c;
    return std::nullopt;
  };
  switch (name[0]) {
    case 'A':
      return name.size() == 3 ? match(command::ack) : match(command::abort);
    case 'B':
      return match(command::begin);
    case 'C':
      if (name.size() == 6) return match(command::commit);
      return name.size() == 7 ? match(command::connect) : match(command::connected);
    case 'D':
      return match(command::disconnect);
    case 'E':
      return match(command::error);
    case 'M':
      return match(command::message);
    case 'N':
      return match(command::nack);
    case 'R':
      return match(command::receipt);
    case 'S':
      if (name.size() == 4) return match(command::send);
      return name.size() == 5 ? match(command::stomp) : match(command::subscribe);
    case 'U':
      return match(command::unsubscribe);
    default:
      return std::nullopt;
  }
}

std::optional<std::string_view> find_header(std::span<const header_view> headers,
                                            std::string_view name) noexcept {
  for (const header_view& h : headers) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

frame::frame(const frame_view& v) : command(v.command), body(v.body) {
  headers.reserve(v.headers.size());
  for (const header_view& h : v.headers) {
    headers.push_back({std::string(h.name), std::string(h.value)});
  }
}

std::optional<std::string_view> frame::header(std::string_view name) const noexcept {
  const auto it =
      std::find_if(headers.begin(), headers.end(), [&](const auto& h) { return h.name == name; });
  if (it == headers.end()) return std::nullopt;
  return it->value;
}

}  // namespace stomp
