#include "auth/passcode.hpp"

#include "auth_test_helpers.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace broker::auth {
namespace {

constexpr std::uint32_t fast_iterations = min_passcode_iterations;  // tests only

TEST(PasscodeTest, VerifyAcceptsTheHashedPasscode) {
  const std::string encoded = hash_passcode("correct horse", fast_iterations);
  EXPECT_TRUE(verify_passcode("correct horse", encoded));
}

TEST(PasscodeTest, VerifyRefusesAWrongPasscode) {
  const std::string encoded = hash_passcode("correct horse", fast_iterations);
  EXPECT_FALSE(verify_passcode("correct horsE", encoded));
  EXPECT_FALSE(verify_passcode("", encoded));
  EXPECT_FALSE(verify_passcode("correct horse ", encoded));
}

TEST(PasscodeTest, HashIsSelfDescribingAndSalted) {
  const std::string a = hash_passcode("pw", fast_iterations);
  const std::string b = hash_passcode("pw", fast_iterations);
  EXPECT_NE(a, b);  // a fresh random salt each time
  EXPECT_TRUE(a.starts_with("pbkdf2-sha256$10000$"));
  std::string error;
  auto h = parse_passcode_hash(a, &error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->iterations, fast_iterations);
  EXPECT_EQ(h->salt.size(), 16u);
  EXPECT_EQ(h->key.size(), 32u);
  EXPECT_EQ(to_string(*h), a);
}

TEST(PasscodeTest, DefaultIterationsAreAtLeastOwaspsRecommendation) {
  static_assert(default_passcode_iterations >= 600'000);
  auto h = parse_passcode_hash(hash_passcode("pw"), nullptr);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->iterations, default_passcode_iterations);
}

TEST(PasscodeTest, ParseRefusesPlainTextWithAClearMessage) {
  for (std::string_view plain : {"secret", "", "pbkdf2-sha256", "hunter2$with$dollars$x"}) {
    std::string error;
    EXPECT_FALSE(parse_passcode_hash(plain, &error)) << plain;
    EXPECT_TRUE(contains(error, "plain-text passcodes are refused")) << error;
    if (plain.starts_with("hunter2")) {
      EXPECT_FALSE(contains(error, "hunter2")) << "the passcode is echoed";
    }
  }
}

TEST(PasscodeTest, ParseRefusesTooFewOrTooManyIterations) {
  auto h = parse_passcode_hash(hash_passcode("pw", fast_iterations), nullptr);
  ASSERT_TRUE(h);
  std::string error;
  h->iterations = min_passcode_iterations - 1;
  EXPECT_FALSE(parse_passcode_hash(to_string(*h), &error));
  EXPECT_TRUE(contains(error, "iteration count must be between")) << error;
  h->iterations = max_passcode_iterations + 1;
  EXPECT_FALSE(parse_passcode_hash(to_string(*h), &error));
  EXPECT_THROW(hash_passcode("pw", min_passcode_iterations - 1), std::invalid_argument);
}

TEST(PasscodeTest, ParseRefusesMalformedFields) {
  const std::string good = hash_passcode("pw", fast_iterations);
  const std::string salt_and_key = good.substr(good.find('$', good.find('$') + 1));
  for (const std::string& bad : {
           "pbkdf2-sha1$10000" + salt_and_key,     // another scheme
           "PBKDF2-SHA256$10000" + salt_and_key,   // schemes are case-sensitive
           "pbkdf2-sha256$010000" + salt_and_key,  // leading zero
           "pbkdf2-sha256$+10000" + salt_and_key,  // sign
           "pbkdf2-sha256$1e5" + salt_and_key,     // not decimal
           "pbkdf2-sha256$99999999999999999999" + salt_and_key,
           good + "$extra",                                                // a fifth field
           "pbkdf2-sha256$10000$c2FsdA==" + good.substr(good.rfind('$')),  // 4-byte salt
           good.substr(0, good.rfind('$')) + "$AAAA",                      // 3-byte hash
           good.substr(0, good.rfind('$')) + "$!!!!",                      // not base64
       }) {
    EXPECT_FALSE(parse_passcode_hash(bad, nullptr)) << bad;
    EXPECT_FALSE(verify_passcode("pw", bad)) << bad;
  }
}

TEST(PasscodeTest, VerifyRefusesATamperedHash) {
  const std::string good = hash_passcode("pw", fast_iterations);
  auto h = parse_passcode_hash(good, nullptr);
  ASSERT_TRUE(h);
  auto flipped = *h;
  flipped.key[0] ^= 1;
  EXPECT_FALSE(verify_passcode("pw", to_string(flipped)));
  auto resalted = *h;
  resalted.salt[5] ^= 1;
  EXPECT_FALSE(verify_passcode("pw", to_string(resalted)));
  auto recounted = *h;
  recounted.iterations += 1;
  EXPECT_FALSE(verify_passcode("pw", to_string(recounted)));
}

TEST(PasscodeTest, VerifyRefusesAHandBuiltHashOutsideTheBounds) {
  auto h = parse_passcode_hash(hash_passcode("pw", fast_iterations), nullptr);
  ASSERT_TRUE(h);
  ASSERT_TRUE(verify_passcode("pw", *h));
  auto weak = *h;
  weak.iterations = 1;
  EXPECT_FALSE(verify_passcode("pw", weak));
}

TEST(UserTableTest, AuthenticatesAKnownUserWithItsRoles) {
  user_table users;
  ASSERT_TRUE(users.add(
      "alice", *parse_passcode_hash(hash_passcode("pw", fast_iterations), nullptr), {"student"}));
  auto p = users.authenticate("alice", "pw");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->user, "alice");
  EXPECT_EQ(p->roles, std::vector<std::string>{"student"});
  EXPECT_FALSE(p->expires_at);
  EXPECT_TRUE(p->token_grants.empty());
  EXPECT_FALSE(users.authenticate("alice", "wrong"));
}

TEST(UserTableTest, RefusesUnknownLoginsAndDuplicateOrEmptyNames) {
  user_table users;
  auto h = *parse_passcode_hash(hash_passcode("pw", fast_iterations), nullptr);
  ASSERT_TRUE(users.add("alice", h, {}));
  EXPECT_FALSE(users.add("alice", h, {}));
  EXPECT_FALSE(users.add("", h, {}));
  EXPECT_FALSE(users.authenticate("bob", "pw"));
  EXPECT_TRUE(users.contains("alice"));
  EXPECT_EQ(users.size(), 1u);
}

}  // namespace
}  // namespace broker::auth
