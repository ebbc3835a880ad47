#pragma once

#include "auth/principal.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

// Bearer tokens: JWT in JWS compact serialization (RFC 7515, 7518, 7519).
namespace broker::auth {

enum class jwt_algorithm { hs256, rs256, es256 };

// "HS256", "RS256", "ES256": the JOSE names, as in a token's `alg` header.
std::string_view to_string(jwt_algorithm a) noexcept;
std::optional<jwt_algorithm> parse_jwt_algorithm(std::string_view name) noexcept;

struct jwt_settings {
  // The one algorithm accepted. A token whose `alg` differs is refused before its signature
  // is looked at, so "none" and algorithm confusion (an HS256 token "signed" with an RS256
  // public key as the HMAC secret) cannot get through.
  jwt_algorithm algorithm = jwt_algorithm::hs256;
  // HS256: the shared secret, at least 32 bytes (RFC 7518 §3.2). RS256 / ES256: the PEM
  // contents of the issuer's public key ("BEGIN PUBLIC KEY") or certificate
  // ("BEGIN CERTIFICATE"); RSA of at least 2048 bits, or EC P-256.
  std::string key;
  // When set, `iss` must equal it.
  std::optional<std::string> issuer;
  // When set, `aud` (a string or an array of strings) must contain it. When not set, a token
  // carrying `aud` is refused: it was meant for someone in particular (RFC 7519 §4.1.3).
  std::optional<std::string> audience;
  bool require_exp = true;
  // Clock skew tolerated on `exp`, `nbf` and `iat`.
  std::chrono::seconds leeway{30};
  // Checked before anything is decoded.
  std::size_t max_token_bytes = 8 * 1024;
  // Claim names: the user name (a non-empty string), the roles (an optional array of
  // strings), and the STOMP grants: an optional object {"subscribe": [patterns], "send":
  // [patterns]} whose patterns may use `{user}`.
  std::string user_claim = "sub";
  std::string roles_claim = "roles";
  std::string grants_claim = "stomp";
};

struct jwt_result {
  std::optional<principal> value;
  // When refused: why, for the log. Never contains the token or its signature.
  std::string reason;
};

// Checks bearer tokens against one issuer's key. Made once at startup; copies share the
// parsed key. verify() is const and thread-safe; one call costs about 6 µs for HS256 (mostly
// JSON), 30 µs for RS256 (2048-bit) and 90 µs for ES256 on the development machine: cheap
// enough for the event loop at CONNECT rates, but the caller decides.
class jwt_verifier {
 public:
  // nullopt, with the reason in *error, when the key does not suit the algorithm.
  static std::optional<jwt_verifier> create(jwt_settings settings, std::string* error);

  jwt_result verify(std::string_view token, std::chrono::system_clock::time_point now =
                                                std::chrono::system_clock::now()) const noexcept;

  const jwt_settings& settings() const noexcept;

 private:
  struct impl;
  explicit jwt_verifier(std::shared_ptr<const impl> state) : impl_(std::move(state)) {}
  std::shared_ptr<const impl> impl_;
};

}  // namespace broker::auth
