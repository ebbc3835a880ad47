#include "auth/jwt.hpp"

#include "auth/base64.hpp"
#include "auth/placeholder.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <utility>

namespace broker::auth {
namespace {

namespace json = boost::json;

struct pkey_deleter {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

struct bio_deleter {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

struct x509_deleter {
  void operator()(X509* p) const noexcept { X509_free(p); }
};

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};

struct ecdsa_sig_deleter {
  void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};

struct openssl_free {
  void operator()(unsigned char* p) const noexcept { OPENSSL_free(p); }
};

constexpr std::size_t hs256_min_secret_bytes = 32;  // RFC 7518 §3.2: at least the hash size
constexpr int rs256_min_bits = 2048;                // RFC 7518 §3.3
constexpr std::size_t es256_signature_bytes = 64;   // RFC 7518 §3.4: R || S, 32 bytes each
constexpr std::size_t max_user_bytes = 256;

// OpenSSL keeps failures in a per-thread queue; drop them once handled, or a later,
// unrelated caller on this thread would find them.
struct clear_openssl_errors {
  ~clear_openssl_errors() { ERR_clear_error(); }
};

std::string openssl_error() {
  const unsigned long e = ERR_peek_last_error();
  if (e == 0) return "no detail from OpenSSL";
  std::array<char, 256> buf{};
  ERR_error_string_n(e, buf.data(), buf.size());
  return buf.data();
}

pkey_ptr load_public_key(std::string_view pem, std::string* error) {
  clear_openssl_errors guard;
  if (pem.size() > INT_MAX) {
    *error = "the key is too large";
    return nullptr;
  }
  auto bio = [&] { return bio_ptr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))); };
  if (auto b = bio()) {
    if (pkey_ptr key{PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr)}) return key;
  }
  // Identity providers often publish a certificate rather than a bare key.
  if (auto b = bio()) {
    std::unique_ptr<X509, x509_deleter> cert{PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)};
    if (cert) {
      if (pkey_ptr key{X509_get_pubkey(cert.get())}) return key;
    }
  }
  *error = fmt::format(
      "the key is not a PEM public key ('BEGIN PUBLIC KEY') or certificate ('BEGIN "
      "CERTIFICATE'): {}",
      openssl_error());
  return nullptr;
}

std::optional<std::string> check_key(jwt_algorithm alg, EVP_PKEY* key) {
  if (alg == jwt_algorithm::rs256) {
    // Plain "RSA" only: an RSA-PSS key would verify a different signature scheme.
    if (!EVP_PKEY_is_a(key, "RSA")) return "RS256 needs an RSA public key";
    if (EVP_PKEY_get_bits(key) < rs256_min_bits)
      return fmt::format("RS256 needs an RSA key of at least {} bits, got {}", rs256_min_bits,
                         EVP_PKEY_get_bits(key));
    return std::nullopt;
  }
  if (!EVP_PKEY_is_a(key, "EC")) return "ES256 needs an EC public key";
  std::array<char, 64> group{};
  std::size_t length = 0;
  if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &length) != 1 ||
      (std::string_view(group.data(), length) != SN_X9_62_prime256v1 &&
       std::string_view(group.data(), length) != "P-256")) {
    ERR_clear_error();
    return "ES256 needs an EC key on curve P-256 (prime256v1)";
  }
  return std::nullopt;
}

// The token's own `alg` is attacker-controlled and unverified: log it only when it looks
// like an algorithm name.
std::string printable_alg(std::string_view alg) {
  if (alg.empty() || alg.size() > 16) return "(unprintable)";
  for (char c : alg) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '+';
    if (!ok) return "(unprintable)";
  }
  return fmt::format("'{}'", alg);
}

std::optional<json::object> decode_json_object(std::string_view part) {
  auto bytes = detail::base64url_decode(part);
  if (!bytes) return std::nullopt;
  json::error_code ec;
  json::value v = json::parse(*bytes, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
std::optional<double> numeric_date(const json::value& v) {
  if (const auto* i = v.if_int64()) return static_cast<double>(*i);
  if (const auto* u = v.if_uint64()) return static_cast<double>(*u);
  if (const auto* d = v.if_double(); d && std::isfinite(*d)) return *d;
  return std::nullopt;
}

std::chrono::system_clock::time_point to_time_point(double seconds) {
  // Clamped so the conversion cannot overflow the clock's (nanosecond, on libstdc++) range;
  // rounded down, so the session never outlives the token.
  using std::chrono::system_clock;
  const double max_seconds = static_cast<double>(
      std::chrono::duration_cast<std::chrono::seconds>(system_clock::duration::max()).count() - 1);
  const double s = std::floor(std::clamp(seconds, 0.0, max_seconds));
  return system_clock::time_point(std::chrono::seconds(static_cast<std::int64_t>(s)));
}

bool has_control_character(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool verify_hs256(std::string_view secret, std::string_view input, std::string_view signature) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_bytes = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(),
           &mac_bytes) == nullptr)
    return false;
  return signature.size() == mac_bytes &&
         CRYPTO_memcmp(mac.data(), signature.data(), mac_bytes) == 0;
}

bool verify_digest(EVP_PKEY* key, std::string_view input, const unsigned char* signature,
                   std::size_t signature_bytes) {
  std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx{EVP_MD_CTX_new()};
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), signature, signature_bytes,
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

// JOSE sends ECDSA signatures as raw R || S (RFC 7518 §3.4); OpenSSL verifies DER.
bool verify_es256(EVP_PKEY* key, std::string_view input, std::string_view signature) {
  if (signature.size() != es256_signature_bytes) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
  std::unique_ptr<ECDSA_SIG, ecdsa_sig_deleter> sig{ECDSA_SIG_new()};
  if (!sig) return false;
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
  if (!r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {  // set0 owns r and s on success
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_bytes = i2d_ECDSA_SIG(sig.get(), &der);
  std::unique_ptr<unsigned char, openssl_free> owned{der};
  if (der_bytes <= 0) return false;
  return verify_digest(key, input, der, static_cast<std::size_t>(der_bytes));
}

// The STOMP grants claim, {"subscribe": [patterns], "send": [patterns]}, into `out`; the
// reason when it is malformed.
std::optional<std::string> read_grants(const json::value& claim, std::string_view claim_name,
                                       std::string_view user, permissions& out) {
  const json::object* object = claim.if_object();
  if (!object) return fmt::format("token {} is not an object", claim_name);
  for (const json::key_value_pair& member : *object) {
    const std::string_view field = member.key();
    action a;
    if (field == "subscribe") {
      a = action::subscribe;
    } else if (field == "send") {
      a = action::send;
    } else {
      // A typo ("publish") would otherwise silently grant nothing.
      return fmt::format("token {} has an unknown key (only subscribe and send)", claim_name);
    }
    const json::array* patterns = member.value().if_array();
    if (!patterns) return fmt::format("token {}.{} is not an array", claim_name, field);
    for (std::size_t i = 0; i < patterns->size(); ++i) {
      const json::string* text = (*patterns)[i].if_string();
      if (!text) return fmt::format("token {}.{}[{}] is not a string", claim_name, field, i);
      if (detail::has_unknown_placeholder(*text))
        return fmt::format("token {}.{}[{}] has a placeholder other than {{user}}", claim_name,
                           field, i);
      // Not placeholder-safe: the pattern grants nothing (see `rule` in rules.hpp).
      const auto expanded = detail::expand_user(*text, user);
      if (!expanded) continue;
      std::string error;
      auto pattern = destination_pattern::parse(*expanded, &error);
      if (!pattern) return fmt::format("token {}.{}[{}]: {}", claim_name, field, i, error);
      out.add(a, std::move(*pattern));
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(jwt_algorithm a) noexcept {
  switch (a) {
    case jwt_algorithm::hs256:
      return "HS256";
    case jwt_algorithm::rs256:
      return "RS256";
    case jwt_algorithm::es256:
      return "ES256";
  }
  return "?";
}

std::optional<jwt_algorithm> parse_jwt_algorithm(std::string_view name) noexcept {
  for (auto a : {jwt_algorithm::hs256, jwt_algorithm::rs256, jwt_algorithm::es256}) {
    if (name == to_string(a)) return a;
  }
  return std::nullopt;
}

struct jwt_verifier::impl {
  jwt_settings settings;
  pkey_ptr key;  // RS256 / ES256; null for HS256, which uses settings.key as the secret

  jwt_result verify(std::string_view token, std::chrono::system_clock::time_point now) const;
  bool signature_valid(std::string_view input, std::string_view signature) const;
};

std::optional<jwt_verifier> jwt_verifier::create(jwt_settings settings, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  if (settings.max_token_bytes == 0) {
    *error = "max_token_bytes must be at least 1";
    return std::nullopt;
  }
  if (settings.leeway < std::chrono::seconds::zero()) {
    *error = "leeway must not be negative";
    return std::nullopt;
  }
  if (settings.user_claim.empty()) {
    *error = "the user claim name must not be empty";
    return std::nullopt;
  }
  auto state = std::make_shared<impl>();
  if (settings.algorithm == jwt_algorithm::hs256) {
    if (settings.key.size() < hs256_min_secret_bytes || settings.key.size() > INT_MAX) {
      *error = fmt::format("the HS256 secret must be at least {} bytes, got {}",
                           hs256_min_secret_bytes, settings.key.size());
      return std::nullopt;
    }
  } else {
    state->key = load_public_key(settings.key, error);
    if (!state->key) return std::nullopt;
    if (auto problem = check_key(settings.algorithm, state->key.get())) {
      *error = std::move(*problem);
      return std::nullopt;
    }
  }
  state->settings = std::move(settings);
  return jwt_verifier(std::move(state));
}

const jwt_settings& jwt_verifier::settings() const noexcept { return impl_->settings; }

jwt_result jwt_verifier::verify(std::string_view token,
                                std::chrono::system_clock::time_point now) const noexcept {
  try {
    return impl_->verify(token, now);
  } catch (...) {  // allocation failure: refuse, never throw onto the event loop
    return {std::nullopt, "internal error while checking the token"};
  }
}

bool jwt_verifier::impl::signature_valid(std::string_view input, std::string_view signature) const {
  clear_openssl_errors guard;
  switch (settings.algorithm) {
    case jwt_algorithm::hs256:
      return verify_hs256(settings.key, input, signature);
    case jwt_algorithm::rs256:
      return verify_digest(key.get(), input,
                           reinterpret_cast<const unsigned char*>(signature.data()),
                           signature.size());
    case jwt_algorithm::es256:
      return verify_es256(key.get(), input, signature);
  }
  return false;
}

jwt_result jwt_verifier::impl::verify(std::string_view token,
                                      std::chrono::system_clock::time_point now) const {
  auto refuse = [](std::string reason) { return jwt_result{std::nullopt, std::move(reason)}; };

  if (token.size() > settings.max_token_bytes)
    return refuse(fmt::format("token is {} bytes, more than the {} allowed", token.size(),
                              settings.max_token_bytes));

  // JWS compact serialization: header.payload.signature (RFC 7515 §7.1).
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return refuse("token is not three base64url parts separated by '.'");
  const std::string_view header_part = token.substr(0, dot1);
  const std::string_view payload_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_part = token.substr(dot2 + 1);

  // The header is read before the signature is checked, so only for `alg` and `crit`.
  const auto header = decode_json_object(header_part);
  if (!header) return refuse("token header is not base64url-encoded JSON object");
  const json::value* alg = header->if_contains("alg");
  if (!alg || !alg->is_string()) return refuse("token header has no alg");
  const std::string_view alg_name = alg->get_string();
  const std::string_view expected = to_string(settings.algorithm);
  if (alg_name != expected) {
    if (alg_name == "none") return refuse("unsigned token (alg none) refused");
    return refuse(
        fmt::format("token alg {} is not the configured {}", printable_alg(alg_name), expected));
  }
  // We implement no JWS extension, so any critical one means we cannot check the token
  // (RFC 7515 §4.1.11).
  if (header->contains("crit")) return refuse("token header has crit extensions");

  const auto signature = detail::base64url_decode(signature_part);
  if (!signature) return refuse("token signature is not base64url");
  if (!signature_valid(token.substr(0, dot2), *signature))
    return refuse("token signature does not verify");

  // Signed by the issuer from here on.
  const auto payload = decode_json_object(payload_part);
  if (!payload) return refuse("token payload is not a base64url-encoded JSON object");

  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double leeway_s = static_cast<double>(settings.leeway.count());
  principal p;
  p.kind = principal_kind::token;

  if (const json::value* v = payload->if_contains("exp")) {
    const auto exp = numeric_date(*v);
    if (!exp) return refuse("token exp is not a number");
    // "The current date/time MUST be before the expiration date/time" (RFC 7519 §4.1.4).
    if (now_s >= *exp + leeway_s)
      return refuse(fmt::format("token expired {:.0f} s ago", now_s - *exp));
    p.expires_at = to_time_point(*exp);
  } else if (settings.require_exp) {
    return refuse("token has no exp");
  }
  if (const json::value* v = payload->if_contains("nbf")) {
    const auto nbf = numeric_date(*v);
    if (!nbf) return refuse("token nbf is not a number");
    if (now_s + leeway_s < *nbf)
      return refuse(fmt::format("token not valid for another {:.0f} s (nbf)", *nbf - now_s));
  }
  if (const json::value* v = payload->if_contains("iat")) {
    const auto iat = numeric_date(*v);
    if (!iat) return refuse("token iat is not a number");
    if (*iat > now_s + leeway_s)
      return refuse(fmt::format("token issued {:.0f} s in the future (iat)", *iat - now_s));
  }

  if (settings.issuer) {
    const json::value* iss = payload->if_contains("iss");
    if (!iss || !iss->is_string() || iss->get_string() != *settings.issuer)
      return refuse("token iss is not the configured issuer");
  }

  if (const json::value* aud = payload->if_contains("aud")) {
    bool ours = false;
    if (aud->is_string()) {
      ours = settings.audience && aud->get_string() == *settings.audience;
    } else if (aud->is_array()) {
      for (const auto& a : aud->get_array()) {
        if (!a.is_string()) return refuse("token aud is not a string or array of strings");
        ours = ours || (settings.audience && a.get_string() == *settings.audience);
      }
    } else {
      return refuse("token aud is not a string or array of strings");
    }
    if (!settings.audience) return refuse("token has aud but no audience is configured");
    if (!ours) return refuse("token aud does not include the configured audience");
  } else if (settings.audience) {
    return refuse("token has no aud");
  }

  const json::value* user = payload->if_contains(settings.user_claim);
  if (!user || !user->is_string() || user->get_string().empty())
    return refuse(fmt::format("token has no {} (the user name)", settings.user_claim));
  const std::string_view user_name = user->get_string();
  // The name reaches log lines and destinations: keep it short and free of control bytes.
  if (user_name.size() > max_user_bytes || has_control_character(user_name))
    return refuse(fmt::format("token {} is longer than {} bytes or has control characters",
                              settings.user_claim, max_user_bytes));
  p.user = std::string(user_name);

  if (const json::value* roles = payload->if_contains(settings.roles_claim)) {
    const json::array* list = roles->if_array();
    if (!list) return refuse(fmt::format("token {} is not an array", settings.roles_claim));
    for (const auto& r : *list) {
      if (!r.is_string())
        return refuse(fmt::format("token {} has a non-string entry", settings.roles_claim));
      p.roles.emplace_back(r.get_string());
    }
  }

  if (const json::value* grants = payload->if_contains(settings.grants_claim)) {
    if (auto problem = read_grants(*grants, settings.grants_claim, p.user, p.token_grants))
      return refuse(std::move(*problem));
  }

  return {std::move(p), {}};
}

}  // namespace broker::auth
