#include "auth/jwt.hpp"

#include "auth/base64.hpp"
#include "auth/rules.hpp"
#include "auth_test_helpers.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace broker::auth {
namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// Test-only token signing: keys generated at test time, signatures made with EVP.
// ---------------------------------------------------------------------------------------------

struct pkey_deleter {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

std::string public_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new(BIO_s_mem()), &BIO_free};
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A self-signed certificate for `key`, as an identity provider might publish it.
std::string certificate_pem(EVP_PKEY* key) {
  std::unique_ptr<X509, decltype(&X509_free)> cert{X509_new(), &X509_free};
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("issuer"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new(BIO_s_mem()), &BIO_free};
  EXPECT_EQ(PEM_write_bio_X509(bio.get(), cert.get()), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

struct test_keys {
  pkey_ptr rsa{EVP_RSA_gen(2048)};
  pkey_ptr other_rsa{EVP_RSA_gen(2048)};
  pkey_ptr ec{EVP_EC_gen("P-256")};
  pkey_ptr other_ec{EVP_EC_gen("P-256")};
  std::string rsa_pem = public_pem(rsa.get());
  std::string ec_pem = public_pem(ec.get());
};

// RSA key generation takes a while; one set serves every test.
const test_keys& keys() {
  static const test_keys k;
  return k;
}

const std::string hs_secret = "0123456789abcdef0123456789abcdef-test-secret";

std::string sign_hs256(std::string_view secret, std::string_view input) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &n);
  return std::string(reinterpret_cast<const char*>(mac.data()), n);
}

// DER for RS256 (which is what JOSE wants) and for ES256 (which it does not: see es256).
std::string sign_digest(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  std::size_t n = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &n, data, input.size()), 1);
  std::string sig(n, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &n, data,
                           input.size()),
            1);
  sig.resize(n);
  return sig;
}

// JOSE's ES256 signature: R || S, 32 bytes each, from OpenSSL's DER.
std::string sign_es256(EVP_PKEY* key, std::string_view input) {
  const std::string der = sign_digest(key, input);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig{
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), &ECDSA_SIG_free};
  EXPECT_TRUE(sig);
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  EXPECT_EQ(BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, 32), 32);
  EXPECT_EQ(BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + 32, 32), 32);
  return raw;
}

enum class signer { hs256, rs256, es256, es256_der, none };

// header.payload.signature, from the JSON texts given.
std::string make_token(std::string_view header_json, std::string_view payload_json, signer how,
                       std::string_view hs_key = hs_secret, EVP_PKEY* key = nullptr) {
  const std::string input =
      detail::base64url_encode(header_json) + "." + detail::base64url_encode(payload_json);
  std::string sig;
  switch (how) {
    case signer::hs256:
      sig = sign_hs256(hs_key, input);
      break;
    case signer::rs256:
      sig = sign_digest(key ? key : keys().rsa.get(), input);
      break;
    case signer::es256:
      sig = sign_es256(key ? key : keys().ec.get(), input);
      break;
    case signer::es256_der:
      sig = sign_digest(key ? key : keys().ec.get(), input);
      break;
    case signer::none:
      break;
  }
  return input + "." + detail::base64url_encode(sig);
}

const system_clock::time_point now{std::chrono::seconds(1'700'000'000)};

// A payload valid at `now`: issued a minute ago, expiring in an hour.
std::string claims(std::string_view extra = "") {
  std::string s = R"({"sub":"alice","iat":1699999940,"exp":1700003600)";
  if (!extra.empty()) s += "," + std::string(extra);
  return s + "}";
}

constexpr std::string_view hs_header = R"({"alg":"HS256","typ":"JWT"})";
constexpr std::string_view rs_header = R"({"alg":"RS256","typ":"JWT"})";
constexpr std::string_view es_header = R"({"alg":"ES256","typ":"JWT"})";

jwt_verifier make_verifier(jwt_settings s) {
  std::string error;
  auto v = jwt_verifier::create(std::move(s), &error);
  EXPECT_TRUE(v.has_value()) << error;
  return std::move(*v);
}

jwt_settings hs256_settings() {
  jwt_settings s;
  s.algorithm = jwt_algorithm::hs256;
  s.key = hs_secret;
  return s;
}

jwt_settings rs256_settings() {
  jwt_settings s;
  s.algorithm = jwt_algorithm::rs256;
  s.key = keys().rsa_pem;
  return s;
}

jwt_settings es256_settings() {
  jwt_settings s;
  s.algorithm = jwt_algorithm::es256;
  s.key = keys().ec_pem;
  return s;
}

// Expects a refusal and returns its reason.
std::string refusal(const jwt_verifier& v, std::string_view token) {
  auto r = v.verify(token, now);
  EXPECT_FALSE(r.value.has_value());
  EXPECT_FALSE(r.reason.empty());
  return r.reason;
}

// ---------------------------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------------------------

TEST(JwtTest, AcceptsAValidHs256Token) {
  auto r =
      make_verifier(hs256_settings()).verify(make_token(hs_header, claims(), signer::hs256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->user, "alice");
  EXPECT_EQ(r.value->expires_at, system_clock::time_point(std::chrono::seconds(1'700'003'600)));
  EXPECT_TRUE(r.value->roles.empty());
  EXPECT_TRUE(r.value->token_grants.empty());
}

TEST(JwtTest, AcceptsAValidRs256Token) {
  auto r =
      make_verifier(rs256_settings()).verify(make_token(rs_header, claims(), signer::rs256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->user, "alice");
}

TEST(JwtTest, AcceptsAValidEs256Token) {
  auto r =
      make_verifier(es256_settings()).verify(make_token(es_header, claims(), signer::es256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->user, "alice");
}

TEST(JwtTest, AcceptsAKeyGivenAsACertificate) {
  auto s = rs256_settings();
  s.key = certificate_pem(keys().rsa.get());
  auto r = make_verifier(s).verify(make_token(rs_header, claims(), signer::rs256), now);
  EXPECT_TRUE(r.value) << r.reason;
}

TEST(JwtTest, RefusesAnExpiredToken) {
  const auto v = make_verifier(hs256_settings());
  const auto token =
      make_token(hs_header, R"({"sub":"alice","exp":1699999900})", signer::hs256);  // 100 s ago
  EXPECT_TRUE(contains(refusal(v, token), "expired"));
}

TEST(JwtTest, AcceptsATokenExpiredWithinTheLeeway) {
  const auto token =
      make_token(hs_header, R"({"sub":"alice","exp":1699999980})", signer::hs256);  // 20 s ago
  EXPECT_TRUE(make_verifier(hs256_settings()).verify(token, now).value);
  auto strict = hs256_settings();
  strict.leeway = 0s;
  EXPECT_FALSE(make_verifier(strict).verify(token, now).value);
}

TEST(JwtTest, RefusesATokenAtItsExactExpiryWithoutLeeway) {
  auto s = hs256_settings();
  s.leeway = 0s;
  const auto token = make_token(hs_header, R"({"sub":"alice","exp":1700000000})", signer::hs256);
  EXPECT_FALSE(make_verifier(s).verify(token, now).value);
}

TEST(JwtTest, RefusesATokenNotYetValid) {
  const auto token = make_token(hs_header, claims(R"("nbf":1700000100)"), signer::hs256);
  EXPECT_TRUE(contains(refusal(make_verifier(hs256_settings()), token), "nbf"));
}

TEST(JwtTest, AcceptsNbfWithinTheLeeway) {
  const auto token = make_token(hs_header, claims(R"("nbf":1700000020)"), signer::hs256);
  EXPECT_TRUE(make_verifier(hs256_settings()).verify(token, now).value);
}

TEST(JwtTest, RefusesATokenIssuedInTheFuture) {
  const auto token =
      make_token(hs_header, R"({"sub":"alice","iat":1700000100,"exp":1700003600})", signer::hs256);
  EXPECT_TRUE(contains(refusal(make_verifier(hs256_settings()), token), "iat"));
}

TEST(JwtTest, RefusesNonNumericTimeClaims) {
  const auto v = make_verifier(hs256_settings());
  EXPECT_FALSE(
      v.verify(make_token(hs_header, R"({"sub":"a","exp":"1700003600"})", signer::hs256), now)
          .value);
  EXPECT_FALSE(v.verify(make_token(hs_header, claims(R"("nbf":null)"), signer::hs256), now).value);
}

TEST(JwtTest, AcceptsFractionalAndHugeExp) {
  const auto v = make_verifier(hs256_settings());
  auto r = v.verify(make_token(hs_header, R"({"sub":"a","exp":1700003600.5})", signer::hs256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->expires_at, system_clock::time_point(std::chrono::seconds(1'700'003'600)));
  // Beyond what system_clock holds: clamped, not overflowed.
  r = v.verify(make_token(hs_header, R"({"sub":"a","exp":1e300})", signer::hs256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_GT(*r.value->expires_at, now + 24h * 365 * 100);
}

TEST(JwtTest, ExpIsRequiredUnlessConfiguredOtherwise) {
  const auto token = make_token(hs_header, R"({"sub":"alice"})", signer::hs256);
  EXPECT_TRUE(contains(refusal(make_verifier(hs256_settings()), token), "no exp"));
  auto s = hs256_settings();
  s.require_exp = false;
  auto r = make_verifier(s).verify(token, now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_FALSE(r.value->expires_at);
}

TEST(JwtTest, RefusesAWrongSignature) {
  EXPECT_TRUE(contains(
      refusal(make_verifier(hs256_settings()),
              make_token(hs_header, claims(), signer::hs256, "another-secret-another-secret-0123")),
      "signature"));
  EXPECT_FALSE(
      make_verifier(rs256_settings())
          .verify(make_token(rs_header, claims(), signer::rs256, {}, keys().other_rsa.get()), now)
          .value);
  EXPECT_FALSE(
      make_verifier(es256_settings())
          .verify(make_token(es_header, claims(), signer::es256, {}, keys().other_ec.get()), now)
          .value);
}

TEST(JwtTest, RefusesATamperedPayload) {
  const auto v = make_verifier(es256_settings());
  const std::string token = make_token(es_header, claims(), signer::es256);
  const std::string forged =
      make_token(es_header, R"({"sub":"mallory","exp":1700003600})", signer::none);
  const std::string spliced = forged + token.substr(token.rfind('.') + 1);  // forged ends in '.'
  EXPECT_TRUE(contains(refusal(v, spliced), "signature"));
}

TEST(JwtTest, RefusesAnEs256SignatureInDerForm) {
  const auto token = make_token(es_header, claims(), signer::es256_der);
  EXPECT_FALSE(make_verifier(es256_settings()).verify(token, now).value);
}

TEST(JwtTest, RefusesAlgNone) {
  for (const auto& v : {make_verifier(hs256_settings()), make_verifier(rs256_settings())}) {
    EXPECT_TRUE(
        contains(refusal(v, make_token(R"({"alg":"none"})", claims(), signer::none)), "alg none"));
    // With a signature attached, and in another case, it is refused all the same.
    EXPECT_FALSE(v.verify(make_token(R"({"alg":"none"})", claims(), signer::hs256), now).value);
    EXPECT_FALSE(v.verify(make_token(R"({"alg":"None"})", claims(), signer::none), now).value);
  }
}

TEST(JwtTest, RefusesAnHs256TokenAtAnRs256Verifier) {
  const auto reason =
      refusal(make_verifier(rs256_settings()), make_token(hs_header, claims(), signer::hs256));
  EXPECT_TRUE(contains(reason, "'HS256' is not the configured RS256")) << reason;
}

TEST(JwtTest, RefusesAnRs256TokenAtAnHs256Verifier) {
  EXPECT_FALSE(make_verifier(hs256_settings())
                   .verify(make_token(rs_header, claims(), signer::rs256), now)
                   .value);
  EXPECT_FALSE(make_verifier(es256_settings())
                   .verify(make_token(rs_header, claims(), signer::rs256), now)
                   .value);
}

// The classic algorithm-confusion attack: the RSA public key is public, so anyone can use its
// PEM as an HMAC secret. A verifier that let the token choose the algorithm would accept it.
TEST(JwtTest, RefusesHs256SignedWithTheRsaPublicKeyAsSecret) {
  const auto token = make_token(hs_header, claims(), signer::hs256, keys().rsa_pem);
  auto naive = hs256_settings();
  naive.key = keys().rsa_pem;
  ASSERT_TRUE(make_verifier(naive).verify(token, now).value) << "the forgery is well-formed";
  EXPECT_FALSE(make_verifier(rs256_settings()).verify(token, now).value);
}

TEST(JwtTest, RefusesCriticalHeaderExtensions) {
  const auto token =
      make_token(R"({"alg":"HS256","crit":["b64"],"b64":false})", claims(), signer::hs256);
  EXPECT_TRUE(contains(refusal(make_verifier(hs256_settings()), token), "crit"));
}

TEST(JwtTest, ChecksTheIssuer) {
  auto s = hs256_settings();
  s.issuer = "https://id.example";
  const auto v = make_verifier(s);
  EXPECT_TRUE(
      v.verify(make_token(hs_header, claims(R"("iss":"https://id.example")"), signer::hs256), now)
          .value);
  EXPECT_TRUE(contains(
      refusal(v, make_token(hs_header, claims(R"("iss":"https://evil.example")"), signer::hs256)),
      "iss"));
  EXPECT_FALSE(v.verify(make_token(hs_header, claims(), signer::hs256), now).value);
  EXPECT_FALSE(
      v.verify(make_token(hs_header, claims(R"("iss":["https://id.example"])"), signer::hs256), now)
          .value);
}

TEST(JwtTest, ChecksTheAudienceAsStringOrArray) {
  auto s = hs256_settings();
  s.audience = "stompd";
  const auto v = make_verifier(s);
  EXPECT_TRUE(
      v.verify(make_token(hs_header, claims(R"("aud":"stompd")"), signer::hs256), now).value);
  EXPECT_TRUE(
      v.verify(make_token(hs_header, claims(R"("aud":["web","stompd"])"), signer::hs256), now)
          .value);
  EXPECT_TRUE(contains(
      refusal(v, make_token(hs_header, claims(R"("aud":["web","api"])"), signer::hs256)), "aud"));
  EXPECT_FALSE(v.verify(make_token(hs_header, claims(R"("aud":"web")"), signer::hs256), now).value);
  EXPECT_FALSE(v.verify(make_token(hs_header, claims(), signer::hs256), now).value);
  EXPECT_FALSE(
      v.verify(make_token(hs_header, claims(R"("aud":["stompd",1])"), signer::hs256), now).value);
}

TEST(JwtTest, RefusesATokenWithAudienceWhenNoneIsConfigured) {
  const auto token = make_token(hs_header, claims(R"("aud":"someone-else")"), signer::hs256);
  EXPECT_TRUE(contains(refusal(make_verifier(hs256_settings()), token), "no audience"));
}

TEST(JwtTest, RefusesMalformedTokens) {
  const auto v = make_verifier(hs256_settings());
  const std::string good = make_token(hs_header, claims(), signer::hs256);
  const std::string h = detail::base64url_encode(hs_header);
  const std::string c = detail::base64url_encode(claims());
  auto signed_with = [](const std::string& header, const std::string& payload) {
    const std::string input = header + "." + payload;
    return input + "." + detail::base64url_encode(sign_hs256(hs_secret, input));
  };
  for (const std::string& bad : {
           std::string(),
           std::string("."),
           std::string(".."),
           good.substr(0, good.rfind('.')),  // two parts
           good + ".",                       // four parts
           good + "=",                       // padding
           " " + good,
           signed_with(h + "=", c),                                       // padded header
           signed_with(h, c.substr(0, c.size() - 1) + "+"),               // foreign character
           signed_with(h, detail::base64url_encode("{\"sub\":\"a\",")),   // truncated JSON
           signed_with(h, detail::base64url_encode("[1,2]")),             // not an object
           signed_with(detail::base64url_encode("\"HS256\""), c),         // header not an object
           signed_with(detail::base64url_encode(R"({"typ":"JWT"})"), c),  // no alg
           signed_with(detail::base64url_encode(R"({"alg":256})"), c),
       }) {
    EXPECT_FALSE(v.verify(bad, now).value) << bad;
  }
}

TEST(JwtTest, RefusesATokenWithoutAUser) {
  const auto v = make_verifier(hs256_settings());
  EXPECT_TRUE(contains(refusal(v, make_token(hs_header, R"({"exp":1700003600})", signer::hs256)),
                       "no sub"));
  EXPECT_FALSE(
      v.verify(make_token(hs_header, R"({"sub":"","exp":1700003600})", signer::hs256), now).value);
  EXPECT_FALSE(
      v.verify(make_token(hs_header, R"({"sub":42,"exp":1700003600})", signer::hs256), now).value);
  EXPECT_FALSE(
      v.verify(make_token(hs_header, R"({"sub":"a\nb","exp":1700003600})", signer::hs256), now)
          .value);
}

TEST(JwtTest, ReadsTheUserFromTheConfiguredClaim) {
  auto s = hs256_settings();
  s.user_claim = "preferred_username";
  auto r = make_verifier(s).verify(
      make_token(hs_header, claims(R"("preferred_username":"al")"), signer::hs256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->user, "al");
}

TEST(JwtTest, LastDuplicateClaimWins) {
  // RFC 7515 §4: reject duplicates or take the last one; never the first.
  auto r = make_verifier(hs256_settings())
               .verify(make_token(hs_header, claims(R"("sub":"bob")"), signer::hs256), now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->user, "bob");
}

TEST(JwtTest, RefusesAnOversizedTokenBeforeParsing) {
  const std::string padding(9000, 'x');
  const auto token = make_token(hs_header, claims(R"("pad":")" + padding + "\""), signer::hs256);
  EXPECT_TRUE(contains(refusal(make_verifier(hs256_settings()), token), "bytes"));
  auto s = hs256_settings();
  s.max_token_bytes = 16 * 1024;
  EXPECT_TRUE(make_verifier(s).verify(token, now).value);
}

TEST(JwtTest, ExtractsRolesAndStompGrants) {
  const auto token = make_token(
      hs_header,
      claims(
          R"("roles":["student","tutor"],)"
          R"("stomp":{"subscribe":["/topic/room.*","/user/{user}/queue/**"],"send":["/app/chat"]})"),
      signer::hs256);
  auto r = make_verifier(hs256_settings()).verify(token, now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->roles, (std::vector<std::string>{"student", "tutor"}));
  const permissions& g = r.value->token_grants;
  EXPECT_EQ(g.patterns(action::subscribe),
            (std::vector<std::string>{"/topic/room.*", "/user/alice/queue/**"}));
  EXPECT_EQ(g.patterns(action::send), std::vector<std::string>{"/app/chat"});
  EXPECT_TRUE(g.allows(action::subscribe, "/user/alice/queue/inbox"));
  EXPECT_FALSE(g.allows(action::subscribe, "/user/bob/queue/inbox"));
  EXPECT_FALSE(g.allows(action::send, "/topic/room.1"));
}

TEST(JwtTest, RefusesMalformedRolesAndGrants) {
  const auto v = make_verifier(hs256_settings());
  for (std::string_view extra : {
           R"("roles":"student")",
           R"("roles":["student",1])",
           R"("stomp":["/topic/a"])",
           R"("stomp":{"publish":["/topic/a"]})",
           R"("stomp":{"send":"/topic/a"})",
           R"("stomp":{"send":[1]})",
           R"("stomp":{"send":["/topic/a*"]})",
           R"("stomp":{"send":["/topic/{name}"]})",
       }) {
    EXPECT_FALSE(v.verify(make_token(hs_header, claims(extra), signer::hs256), now).value) << extra;
  }
}

TEST(JwtTest, ReasonsNeverContainTheToken) {
  const auto v = make_verifier(rs256_settings());
  const std::string good = make_token(rs_header, claims(), signer::rs256);
  const std::string signature = good.substr(good.rfind('.') + 1);
  const std::string header_part = good.substr(0, good.find('.'));
  // The RSA key is made per process, so the signature is different every run: change its
  // second-to-last character to one it is not (a fixed "AA" left it valid 1 run in ~1,000).
  std::string tampered = good;
  char& c = tampered[tampered.size() - 2];
  c = c == 'A' ? 'B' : 'A';
  for (const std::string& bad : {
           tampered,
           make_token(rs_header, R"({"sub":"alice","exp":1})", signer::rs256),
           good + std::string(9000, 'A'),
           make_token(hs_header, claims(), signer::hs256),
       }) {
    const std::string reason = refusal(v, bad);
    EXPECT_FALSE(contains(reason, bad.substr(bad.rfind('.') + 1, 16))) << reason;
    EXPECT_FALSE(contains(reason, header_part)) << reason;
    EXPECT_FALSE(contains(reason, signature.substr(0, 16))) << reason;
  }
}

TEST(JwtTest, RefusesAnUnprintableAlgWithoutEchoingIt) {
  const auto token = make_token(R"({"alg":"HS256\u001b[31m"})", claims(), signer::hs256);
  const auto reason = refusal(make_verifier(hs256_settings()), token);
  EXPECT_FALSE(contains(reason, "\x1b")) << reason;
}

TEST(JwtVerifierTest, CreateRefusesAShortHs256Secret) {
  auto s = hs256_settings();
  s.key = "too-short";
  std::string error;
  EXPECT_FALSE(jwt_verifier::create(s, &error));
  EXPECT_TRUE(contains(error, "at least 32 bytes")) << error;
}

TEST(JwtVerifierTest, CreateRefusesAKeyOfTheWrongKind) {
  std::string error;
  auto s = rs256_settings();
  s.key = keys().ec_pem;
  EXPECT_FALSE(jwt_verifier::create(s, &error));
  EXPECT_TRUE(contains(error, "RSA")) << error;
  s = es256_settings();
  s.key = keys().rsa_pem;
  EXPECT_FALSE(jwt_verifier::create(s, &error));
  EXPECT_TRUE(contains(error, "EC")) << error;
  pkey_ptr p384{EVP_EC_gen("P-384")};
  s.key = public_pem(p384.get());
  EXPECT_FALSE(jwt_verifier::create(s, &error));
  EXPECT_TRUE(contains(error, "P-256")) << error;
  pkey_ptr small{EVP_RSA_gen(1024)};
  s = rs256_settings();
  s.key = public_pem(small.get());
  EXPECT_FALSE(jwt_verifier::create(s, &error));
  EXPECT_TRUE(contains(error, "2048")) << error;
}

TEST(JwtVerifierTest, CreateRefusesSomethingThatIsNotAPublicKey) {
  std::string error;
  auto s = rs256_settings();
  s.key = "not a key";
  EXPECT_FALSE(jwt_verifier::create(s, &error));
  EXPECT_TRUE(contains(error, "BEGIN PUBLIC KEY")) << error;
}

TEST(JwtVerifierTest, AlgorithmNamesRoundTrip) {
  for (auto a : {jwt_algorithm::hs256, jwt_algorithm::rs256, jwt_algorithm::es256})
    EXPECT_EQ(parse_jwt_algorithm(to_string(a)), a);
  EXPECT_FALSE(parse_jwt_algorithm("none"));
  EXPECT_FALSE(parse_jwt_algorithm("hs256"));
}

TEST(AuthorizerTest, TokenUserNameWithStarCannotWidenATokenGrant) {
  const auto token = make_token(
      hs_header,
      R"({"sub":"*","exp":1700003600,"stomp":{"subscribe":["/topic/dm.{user}","/topic/x"]}})",
      signer::hs256);
  auto r = make_verifier(hs256_settings()).verify(token, now);
  ASSERT_TRUE(r.value) << r.reason;
  EXPECT_EQ(r.value->token_grants.patterns(action::subscribe),
            std::vector<std::string>{"/topic/x"});
  EXPECT_FALSE(make_authorizer({}).allows(*r.value, action::subscribe, "/topic/dm.bob"));
}

}  // namespace
}  // namespace broker::auth
