#pragma once

#include <optional>
#include <string>
#include <string_view>

// The `{user}` placeholder in destination patterns (authorization rules and a token's grants),
// replaced by the principal's name once per connection. Pure functions, safe on any thread.
namespace broker::auth {

// True when `user` can be substituted for `{user}` without changing a pattern's shape: not
// empty, and no '.', '/' or '*'. For any other name `{user}` patterns grant nothing (see
// expand_user); the config loader may want to warn about such user names.
bool is_placeholder_safe(std::string_view user) noexcept;

namespace detail {

// `pattern` with every "{user}" replaced by `user`; nullopt when `user` is not
// placeholder-safe. A pattern without placeholders comes back unchanged.
std::optional<std::string> expand_user(std::string_view pattern, std::string_view user);

// Any '{' or '}' that is not part of "{user}": an unknown placeholder or a typo.
bool has_unknown_placeholder(std::string_view pattern) noexcept;

}  // namespace detail

}  // namespace broker::auth
