#include "auth/credentials.hpp"

#include "auth/passcode.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace broker::auth {
namespace {

using kind = credential_choice::kind;

constexpr bool jwt_on = true;
constexpr bool jwt_off = false;
constexpr bool anonymous_on = true;
constexpr bool anonymous_off = false;

// alice is a static user. Choosing never verifies, so her hash need not be a real one.
const user_table& users() {
  static const user_table t = [] {
    user_table u;
    u.add("alice", passcode_hash{}, {});
    return u;
  }();
  return t;
}

credential_choice choose(const connect_credentials& c, bool jwt = jwt_on,
                         bool anonymous = anonymous_off) {
  return choose_credential(c, jwt, users(), anonymous);
}

TEST(CredentialsTest, BearerHeaderComesBeforeEveryOtherCredential) {
  const auto c = choose({.login = "alice",
                         .passcode = "p.q.r",
                         .authorization = "Bearer h.e.ader",
                         .transport_token = "u.r.l"});
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "h.e.ader");
}

TEST(CredentialsTest, BearerHeaderWinsOverAStaticUsersPasscode) {
  const auto c = choose({.login = "alice", .passcode = "pw", .authorization = "Bearer tok"}, jwt_on,
                        anonymous_on);
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "tok");
}

TEST(CredentialsTest, TransportTokenIsUsedWithoutABearerHeader) {
  const auto c = choose({.passcode = "p.q.r", .transport_token = "u.r.l"});
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "u.r.l");
}

TEST(CredentialsTest, AuthorizationThatIsNotBearerIsIgnored) {
  for (std::string_view header : {"Basic YWxpY2U6cHc=", "bearer tok", "Bearertok", "Bearer"}) {
    const auto c = choose({.authorization = header, .transport_token = "u.r.l"});
    EXPECT_EQ(c.what, kind::token) << header;
    EXPECT_EQ(c.token, "u.r.l") << header;
  }
  EXPECT_EQ(choose({.authorization = "Basic YWxpY2U6cHc="}, jwt_on, anonymous_on).what,
            kind::anonymous);
}

// Today's order: "Bearer " is taken as the bearer source even when nothing follows, so the
// URL's token and a token-shaped passcode are not looked at.
TEST(CredentialsTest, EmptyBearerHidesTheOtherTokenSources) {
  EXPECT_EQ(
      choose({.authorization = "Bearer ", .transport_token = "u.r.l"}, jwt_on, anonymous_on).what,
      kind::anonymous);
  EXPECT_EQ(choose({.passcode = "p.q.r", .authorization = "Bearer "}, jwt_on, anonymous_on).what,
            kind::anonymous);
  const auto c = choose({.login = "alice", .passcode = "pw", .authorization = "Bearer "});
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_EQ(c.login, "alice");
}

TEST(CredentialsTest, TokenShapedPasscodeIsATokenWithoutAStaticLogin) {
  auto c = choose({.passcode = "p.q.r"});
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "p.q.r");
  c = choose({.login = "bob", .passcode = "p.q.r"});
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "p.q.r");
}

TEST(CredentialsTest, TokenShapedPasscodeOfAStaticUserStaysAPasscode) {
  const auto c = choose({.login = "alice", .passcode = "p.q.r"});
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_EQ(c.login, "alice");
  EXPECT_EQ(c.passcode, "p.q.r");
  EXPECT_TRUE(c.token.empty());
}

TEST(CredentialsTest, OnlyExactlyTwoDotsMakeAPasscodeLookLikeAToken) {
  for (std::string_view passcode : {"pw", "p.q", "p.q.r.s"})
    EXPECT_EQ(choose({.passcode = passcode}, jwt_on, anonymous_on).what, kind::anonymous)
        << passcode;
  // Only the dots are counted; the verifier refuses what is not really a token.
  const auto c = choose({.passcode = ".."});
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "..");
}

TEST(CredentialsTest, TokensAreIgnoredWhenJwtIsOff) {
  const connect_credentials token_only{
      .passcode = "p.q.r", .authorization = "Bearer tok", .transport_token = "u.r.l"};
  EXPECT_EQ(choose(token_only, jwt_off, anonymous_on).what, kind::anonymous);
  const auto refused = choose(token_only, jwt_off, anonymous_off);
  EXPECT_EQ(refused.what, kind::refused);
  EXPECT_EQ(refused.reason, "no credentials and anonymous access is off");
  const auto c = choose({.login = "alice", .passcode = "pw", .authorization = "Bearer tok"},
                        jwt_off, anonymous_off);
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_EQ(c.login, "alice");
  EXPECT_EQ(c.passcode, "pw");
}

TEST(CredentialsTest, StaticLoginChoosesItsPasscode) {
  const auto c = choose({.login = "alice", .passcode = "pw"});
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_EQ(c.login, "alice");
  EXPECT_EQ(c.passcode, "pw");
  EXPECT_TRUE(c.reason.empty());
}

TEST(CredentialsTest, StaticLoginWithoutPasscodeIsCheckedWithAnEmptyOne) {
  const auto c = choose({.login = "alice"}, jwt_off, anonymous_on);
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_EQ(c.passcode, "");
}

TEST(CredentialsTest, StaticLoginNeverFallsBackToAnonymous) {
  for (bool jwt : {jwt_on, jwt_off}) {
    const auto c = choose({.login = "alice", .passcode = "wrong"}, jwt, anonymous_on);
    EXPECT_EQ(c.what, kind::passcode) << jwt;
  }
}

TEST(CredentialsTest, StaticLoginsAreCaseSensitive) {
  const auto c = choose({.login = "Alice", .passcode = "pw"}, jwt_on, anonymous_on);
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_TRUE(c.unknown_login);
}

// Issue 12 item 9: an unknown login answered at once, a known one after PBKDF2, tells by
// timing which logins exist; both go to the verifier instead.
TEST(CredentialsTest, UnknownLoginIsCheckedLikeAKnownOneThenFallsBackToAnonymous) {
  const auto c = choose({.login = "bob", .passcode = "pw"}, jwt_on, anonymous_on);
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_EQ(c.login, "bob");
  EXPECT_EQ(c.passcode, "pw");
  EXPECT_TRUE(c.unknown_login);
  EXPECT_TRUE(c.anonymous_fallback);
}

TEST(CredentialsTest, UnknownLoginIsCheckedLikeAKnownOneThenRefusedWhenAnonymousIsOff) {
  auto c = choose({.login = "bob", .passcode = "pw"});
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_TRUE(c.unknown_login);
  EXPECT_FALSE(c.anonymous_fallback);
  c = choose({.login = ""}, jwt_off);  // an empty login header is still a login
  EXPECT_EQ(c.what, kind::passcode);
  EXPECT_TRUE(c.unknown_login);
}

TEST(CredentialsTest, KnownLoginIsNotMarkedUnknown) {
  const auto c = choose({.login = "alice", .passcode = "pw"}, jwt_on, anonymous_on);
  EXPECT_FALSE(c.unknown_login);
  EXPECT_FALSE(c.anonymous_fallback);
}

TEST(CredentialsTest, LoginWithoutStaticUsersNeedsNoCheck) {
  // Nothing to learn when no login exists: anonymous at once, or refused by name.
  const user_table none;
  EXPECT_EQ(choose_credential({.login = "bob", .passcode = "pw"}, jwt_off, none, anonymous_on).what,
            kind::anonymous);
  const auto c =
      choose_credential({.login = "bob", .passcode = "pw"}, jwt_off, none, anonymous_off);
  EXPECT_EQ(c.what, kind::refused);
  EXPECT_EQ(c.reason, "unknown user 'bob'");
}

TEST(CredentialsTest, NothingPresentedIsAnonymousWhenAllowed) {
  EXPECT_EQ(choose({}, jwt_on, anonymous_on).what, kind::anonymous);
  EXPECT_EQ(choose({}, jwt_off, anonymous_on).what, kind::anonymous);
}

TEST(CredentialsTest, NoCredentialsAreRefusedWhenAnonymousIsOff) {
  // A passcode without a login, not shaped like a token, is no credential either.
  for (const connect_credentials& c : {connect_credentials{}, connect_credentials{.passcode = "pw"},
                                       connect_credentials{.transport_token = ""}}) {
    const auto r = choose(c, jwt_on, anonymous_off);
    EXPECT_EQ(r.what, kind::refused);
    EXPECT_EQ(r.reason, "no credentials and anonymous access is off");
  }
}

TEST(CredentialsTest, TokenNeedsNoAnonymousAccess) {
  const auto c = choose({.authorization = "Bearer tok"}, jwt_on, anonymous_off);
  EXPECT_EQ(c.what, kind::token);
  EXPECT_EQ(c.token, "tok");
}

}  // namespace
}  // namespace broker::auth
