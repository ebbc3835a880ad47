#include "auth/credentials.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace broker::auth {
namespace {

constexpr std::string_view bearer_prefix = "Bearer ";

// JWS compact serialization: three base64url parts joined by '.' (RFC 7515 §7.1). Only the
// dots are counted; whether it really is a token is for the verifier to say.
bool looks_like_jwt(std::string_view s) { return std::count(s.begin(), s.end(), '.') == 2; }

}  // namespace

credential_choice choose_credential(const connect_credentials& c, bool jwt_enabled,
                                    const user_table& static_users, bool anonymous_allowed) {
  using kind = credential_choice::kind;
  auto given = [](std::optional<std::string_view> h) { return h && !h->empty(); };
  const bool static_login = given(c.login) && static_users.contains(*c.login);

  std::string_view token;
  if (c.authorization && c.authorization->starts_with(bearer_prefix))
    token = c.authorization->substr(bearer_prefix.size());
  else if (!c.transport_token.empty())
    token = c.transport_token;
  else if (jwt_enabled && given(c.passcode) && looks_like_jwt(*c.passcode) && !static_login)
    token = *c.passcode;

  if (!token.empty()) {
    if (jwt_enabled) return {.what = kind::token, .token = std::string(token)};
    return {.what = kind::refused, .reason = "a bearer token, and auth.jwt is not enabled"};
  }
  if (given(c.login)) {
    if (static_login || static_users.size() != 0)
      return {.what = kind::passcode,
              .login = std::string(*c.login),
              .passcode = std::string(c.passcode.value_or("")),
              .unknown_login = !static_login};
    return {.what = kind::refused, .reason = fmt::format("unknown user '{}'", *c.login)};
  }
  if (given(c.passcode)) return {.what = kind::refused, .reason = "a passcode without a login"};
  if (anonymous_allowed) return {.what = kind::anonymous};
  return {.what = kind::refused, .reason = "no credentials and anonymous access is off"};
}

}  // namespace broker::auth
