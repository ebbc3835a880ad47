#pragma once

#include <optional>
#include <string>
#include <string_view>

// RFC 4648: §5 base64url without padding (JOSE: JWT parts), §4 base64 with padding (passcode
// hashes, binary bodies in the admin API). Pure functions, safe on any thread.
namespace broker::auth::detail {

// Decoding is strict: nullopt for any character outside the alphabet, wrong padding, a
// length no encoding produces, or non-zero bits left over in the last character.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace broker::auth::detail
