#include "stomp/negotiate.hpp"

#include "stomp/decimal.hpp"

#include <algorithm>

namespace stomp {

namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

std::uint64_t interval(std::uint64_t a, std::uint64_t b) noexcept {
  return a == 0 || b == 0 ? 0 : std::max(a, b);
}

}  // namespace

std::optional<version> negotiate_version(std::optional<std::string_view> accept_version) {
  if (!accept_version) return version::v1_0;
  std::optional<version> best;
  std::string_view rest = *accept_version;
  while (true) {
    auto comma = rest.find(',');
    auto v = trim(rest.substr(0, comma));
    std::optional<version> got;
    if (v == "1.0") got = version::v1_0;
    if (v == "1.1") got = version::v1_1;
    if (v == "1.2") got = version::v1_2;
    if (got && (!best || *got > *best)) best = got;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return best;
}

std::optional<heart_beat> parse_heart_beat(std::optional<std::string_view> header) {
  if (!header) return heart_beat{};
  auto comma = header->find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  auto x = parse_decimal<std::uint64_t>(trim(header->substr(0, comma)));
  auto y = parse_decimal<std::uint64_t>(trim(header->substr(comma + 1)));
  if (!x || !y) return std::nullopt;
  return heart_beat{*x, *y};
}

heart_beat_intervals negotiate_heart_beat(heart_beat ours, heart_beat theirs) noexcept {
  return {interval(ours.send_ms, theirs.receive_ms), interval(ours.receive_ms, theirs.send_ms)};
}

heart_beat answer_heart_beat(heart_beat theirs, heart_beat preferred, std::uint64_t floor_ms,
                             std::uint64_t ceiling_ms) noexcept {
  auto offer = [&](std::uint64_t asked, std::uint64_t ours) -> std::uint64_t {
    if (ours == 0) return 0;
    if (asked == 0) return ours;
    return std::clamp(asked, floor_ms, std::max(floor_ms, ceiling_ms));
  };
  return {offer(theirs.receive_ms, preferred.send_ms), offer(theirs.send_ms, preferred.receive_ms)};
}

}  // namespace stomp
