#pragma once

#include "stomp/frame.hpp"

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace stomp {

// Appends `value` escaped for `v` (STOMP 1.2, "Value Encoding"). For 1.0, which has no
// escapes, CR and LF are replaced by spaces so the frame stays well-formed.
void append_escaped(std::string& out, std::string_view value, version v);

// Appends the exact wire bytes of a frame: command, headers in order (escaped unless the
// command is exempt), a content-length computed from the body whenever the body is non-empty
// (any content-length in `headers` is dropped: the serializer never writes a wrong one), a
// blank line, the body and the terminating NUL. Where headers are not escaped (STOMP 1.0, and
// CONNECT, STOMP and CONNECTED), a header whose name contains ':', CR or LF is left out: it
// cannot be written, and written raw it would read back as a different header. CR and LF in
// values become spaces. So a frame read back never has a header that was not put in it.
void serialize(std::string& out, command c, std::span<const header_view> headers,
               std::string_view body, version v);
void serialize(std::string& out, const frame& f, version v);
std::string serialize(const frame& f, version v);

// The heart-beat: one EOL (STOMP 1.2, "Heart-beating").
inline constexpr std::string_view heartbeat_bytes = "\n";

// A MESSAGE encoded once and sent to many subscriptions. Its 1.0 tail follows serialize()'s
// rule for unescaped headers: no header whose name holds ':', CR or LF.
//
// Every byte except the per-recipient headers is encoded at construction and shared: a
// recipient's frame is head(subscription, ack) followed by tail(version), two buffers written
// as one (a scatter write, or one WebSocket message). Only `subscription` and, for
// subscriptions that acknowledge, `ack` differ between recipients. Immutable once built, so
// one instance can be shared across threads through shared_ptr<const shared_message>.
class shared_message {
 public:
  // `headers` are the common headers (destination, message-id, content-type, the sender's
  // custom headers...), in order; content-length is computed from `body`.
  shared_message(std::span<const header_view> headers, std::string_view body);

  // The per-recipient head: "MESSAGE\nsubscription:<id>\n" plus "ack:<ack_id>\n" when ack_id
  // is non-empty. Written into `out`, which is cleared first.
  static void head(std::string& out, std::string_view subscription, std::string_view ack_id,
                   version v);

  // Common headers, blank line, body and NUL, escaped for `v`.
  std::string_view tail(version v) const noexcept;

  std::size_t body_size() const noexcept { return body_size_; }
  // Bytes held: the tails built (usually one).
  std::size_t size() const noexcept {
    return tails_[0].size() + tails_[1].size() + tails_[2].size();
  }

 private:
  // Escaping differs between versions only when a value contains CR, LF, ':' or '\'; when
  // none does (nearly always), only the 1.2 entry is built and the others stay empty. A tail
  // is never empty otherwise: it ends with the blank line and the NUL.
  std::array<std::string, 3> tails_;
  std::size_t body_size_ = 0;
};

}  // namespace stomp
