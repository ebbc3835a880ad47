#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace broker {

// RFC 3986 §2.1 percent-decoding; with `plus_is_space` (query strings), '+' is a space too
// (HTML form encoding, which curl and Python's urlencode produce). nullopt on a malformed
// escape. Used by the admin API's request targets and the WebSocket URL's access_token.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

}  // namespace broker
