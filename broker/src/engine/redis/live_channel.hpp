#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker::redis {

// A live-only topic message (not journaled) on its way to the other nodes through Redis
// pub/sub, at most once as on one node. Channel: {<prefix><destination>}:live. Payload:
// "<origin> <message-id> <header bytes>\n" then the encoded headers (storage/header_codec.hpp)
// then the body. `origin` names the publishing node's run, so a node skips its own messages
// (it delivered them already) and the other nodes' message-ids stay apart.
struct live_message {
  std::string origin;
  std::string id;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

std::string live_channel(std::string_view key_prefix, std::string_view destination);
std::string encode_live(const live_message& m);
// nullopt when `payload` is not one.
std::optional<live_message> parse_live(std::string_view payload);

}  // namespace broker::redis
