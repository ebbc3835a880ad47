#pragma once

#include "auth/passcode.hpp"

#include <optional>
#include <string>
#include <string_view>

// Which credential a CONNECT presents, decided before anything is verified: the session
// verifies the choice (a token with the jwt_verifier, a passcode on the verification pool)
// and refuses or accepts. Pure and thread-safe; nothing here verifies, blocks or logs.
namespace broker::auth {

// What a CONNECT offers, as views into its frame and transport; valid for the call only.
struct connect_credentials {
  std::optional<std::string_view> login = {};          // the `login` header
  std::optional<std::string_view> passcode = {};       // the `passcode` header
  std::optional<std::string_view> authorization = {};  // the `Authorization` header
  // The WebSocket URL's `access_token` (browsers cannot set headers); empty when there is none.
  std::string_view transport_token = {};
};

// What the session should do with a CONNECT; which of the strings is set depends on `what`.
struct credential_choice {
  enum class kind {
    token,      // verify `token` with the jwt_verifier
    passcode,   // check `login` and `passcode` against the static users (PBKDF2: off the loop)
    anonymous,  // accept as the anonymous principal
    refused,    // refuse with `reason`
  };
  kind what = kind::refused;
  std::string token = {};     // kind::token: the bearer token, never empty
  std::string login = {};     // kind::passcode: as presented, a static user's name or not
  std::string passcode = {};  // kind::passcode: as presented; empty when the header is absent
  // kind::passcode: the login names no static user, so the check runs against a decoy and
  // fails; then the CONNECT is accepted as anonymous when `anonymous_fallback`, else refused.
  bool unknown_login = false;
  bool anonymous_fallback = false;
  // kind::refused: "unknown user '<login>'" or "no credentials and anonymous access is off",
  // for the log line; the client is only told "access refused".
  std::string reason = {};
};

// The first that applies:
//  1. a bearer token, when `jwt_enabled`: CONNECT's `Authorization: Bearer <token>`, else the
//     transport's token, else a passcode that looks like a JWT (three dot-separated parts)
//     unless the login names a static user. An `Authorization: Bearer ` with nothing after it
//     offers no token and hides the other two sources.
//  2. a static user's login with its passcode. A login that names a static user never falls
//     back to anonymous access, whatever its passcode.
//  3. when there are static users, any other login too (`unknown_login`): it costs the same
//     check as a real one, so timing does not tell which logins exist, and then falls back
//     to anonymous access when `anonymous_allowed` (`anonymous_fallback`), else is refused.
//  4. anonymous, when `anonymous_allowed` (no login, or no static users to check it against).
//  5. refused.
// Without `jwt_enabled` every token is ignored, so the choice goes on to 2.
credential_choice choose_credential(const connect_credentials& c, bool jwt_enabled,
                                    const user_table& static_users, bool anonymous_allowed);

}  // namespace broker::auth
