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

// What a server offers in CONNECTED so that the client's own intervals are the ones agreed:
// it can send every `theirs.receive_ms` and wants to hear every `theirs.send_ms`, each held
// within [floor_ms, ceiling_ms]. Where the client says 0 (none) the server's `preferred`
// value is offered (nothing is agreed that way, as the client asked); a `preferred` 0 means
// the server never sends, or never expects, heart-beats, whatever the client asks.
// negotiate_heart_beat(offer, theirs) then gives the intervals both sides compute: a floor
// raises them, while a client interval above the ceiling still wins on its side (the spec
// takes the larger), the server only sending more often than asked.
heart_beat answer_heart_beat(heart_beat theirs, heart_beat preferred, std::uint64_t floor_ms,
                             std::uint64_t ceiling_ms) noexcept;

}  // namespace stomp
