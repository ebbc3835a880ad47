#pragma once

#include "stomp/serializer.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace broker {

// One published message, encoded once and shared by every delivery of it
// (shared_ptr<const message>), on any thread.
struct message {
  std::string destination;
  std::string id;                 // the message-id header, unique per broker run
  stomp::shared_message encoded;  // MESSAGE bytes minus the per-subscription head
  bool utf8 = true;               // may travel in a WebSocket text message

  message(std::string dest, std::string message_id, stomp::shared_message enc, bool is_utf8)
      : destination(std::move(dest)),
        id(std::move(message_id)),
        encoded(std::move(enc)),
        utf8(is_utf8) {}
};

using message_ptr = std::shared_ptr<const message>;

// True when `bytes` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates).
bool is_utf8(std::string_view bytes) noexcept;

}  // namespace broker
