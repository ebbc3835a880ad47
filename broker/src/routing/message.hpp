#pragma once

#include "routing/held_bytes.hpp"
#include "stomp/serializer.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace broker {

// One published message, encoded once and shared by every delivery of it
// (shared_ptr<const message>), on any thread. It counts itself in the broker's held_bytes
// for as long as it lives.
struct message {
  std::string destination;
  // The message-id header: x-seq for a journaled message (unique per destination, stable
  // across restarts), else "<session>-<n>" (unique per broker run).
  std::string id;
  stomp::shared_message encoded;  // MESSAGE bytes minus the per-subscription head
  bool utf8 = true;               // may travel in a WebSocket text message
  std::uint64_t seq = 0;          // x-seq of a journaled message; 0 when not journaled
  std::string epoch;              // x-epoch of a journaled message: what numbers seq
  bool presence = false;          // a join or leave (x-presence): for those who asked only
  held_bytes::claim held;

  message(held_bytes& budget, std::string dest, std::string message_id, stomp::shared_message enc,
          bool is_utf8, std::uint64_t sequence = 0)
      : destination(std::move(dest)),
        id(std::move(message_id)),
        encoded(std::move(enc)),
        utf8(is_utf8),
        seq(sequence),
        held(budget, sizeof(message) + destination.size() + id.size() + encoded.size()) {}
};

using message_ptr = std::shared_ptr<const message>;

// True when `bytes` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates).
bool is_utf8(std::string_view bytes) noexcept;

}  // namespace broker
