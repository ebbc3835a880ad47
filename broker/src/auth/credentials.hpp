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
  // fails, then the CONNECT is refused: timing does not tell which logins exist.
  bool unknown_login = false;
  // kind::refused: what is wrong, for the log line ("unknown user 'x'", "no credentials and
  // anonymous access is off"); the client is only told "access refused".
  std::string reason = {};
};

// Credentials that are presented are checked, and refused when they don't verify, whatever
// `anonymous_allowed` says; only a CONNECT presenting none is anonymous. The first that applies:
//  1. a bearer token: CONNECT's `Authorization: Bearer <token>`, else the transport's token,
//     verified when `jwt_enabled`, else refused; with `jwt_enabled`, also a passcode that
//     looks like a JWT (three dot-separated parts) unless the login names a static user. An
//     `Authorization: Bearer ` with nothing after it offers no token and hides the others.
//  2. a static user's login with its passcode.
//  3. any other login: when there are static users it costs the same check as a real one
//     (`unknown_login`), so timing does not tell which logins exist; either way it is refused.
//  4. a passcode without a login: refused.
//  5. nothing (an empty login or passcode counts as none): anonymous when `anonymous_allowed`,
//     else refused.
credential_choice choose_credential(const connect_credentials& c, bool jwt_enabled,
                                    const user_table& static_users, bool anonymous_allowed);

}  // namespace broker::auth
