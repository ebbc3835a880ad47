#include "auth/placeholder.hpp"

#include <cstddef>

namespace broker::auth {

bool is_placeholder_safe(std::string_view user) noexcept {
  return !user.empty() && user.find_first_of("./*") == std::string_view::npos;
}

namespace detail {

std::optional<std::string> expand_user(std::string_view pattern, std::string_view user) {
  constexpr std::string_view placeholder = "{user}";
  if (pattern.find(placeholder) == std::string_view::npos) return std::string(pattern);
  if (!is_placeholder_safe(user)) return std::nullopt;
  std::string out;
  out.reserve(pattern.size() + user.size());
  for (std::size_t i = 0;;) {
    const std::size_t at = pattern.find(placeholder, i);
    out.append(pattern.substr(i, at - i));
    if (at == std::string_view::npos) break;
    out.append(user);
    i = at + placeholder.size();
  }
  return out;
}

bool has_unknown_placeholder(std::string_view pattern) noexcept {
  constexpr std::string_view placeholder = "{user}";
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.substr(i, placeholder.size()) == placeholder) {
      i += placeholder.size() - 1;
    } else if (pattern[i] == '{' || pattern[i] == '}') {
      return true;
    }
  }
  return false;
}

}  // namespace detail

}  // namespace broker::auth
