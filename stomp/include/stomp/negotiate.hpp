#pragma once

#include "stomp/frame.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace stomp {

// What CONNECT and CONNECTED settle between a client and a server: the protocol version and
// the heart-beat intervals. Pure functions of header values, so they are tested without a
// connection.

// The highest version both sides speak, from CONNECT's accept-version ("1.1,1.2"); an
// absent header means 1.0, and nullopt means no version in common (STOMP 1.2, "Protocol
// Negotiation").
std::optional<version> negotiate_version(std::optional<std::string_view> accept_version);

// A heart-beat header: "x,y" in milliseconds, where for a client x is how often it can send
// and y how often it wants to receive (0: never). Absent means "0,0"; nullopt when malformed.
// Spaces around each number are tolerated (STOMP 1.2, "Heart-beating").
struct heart_beat {
  std::uint64_t send_ms = 0;
  std::uint64_t receive_ms = 0;
};
std::optional<heart_beat> parse_heart_beat(std::optional<std::string_view> header);

// The intervals one side uses, given what it offers and what the other side sent: it sends
// every max(its send, their receive) and expects to hear every max(its receive, their send);
// 0 (none) when either side said 0 (STOMP 1.2, "Heart-beating").
struct heart_beat_intervals {
  std::uint64_t send_every_ms = 0;
  std::uint64_t expect_every_ms = 0;
};
heart_beat_intervals negotiate_heart_beat(heart_beat ours, heart_beat theirs) noexcept;

}  // namespace stomp
