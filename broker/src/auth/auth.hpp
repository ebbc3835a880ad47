#pragma once

#include "broker/destination_pattern.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

// Authentication (who is connecting) and authorization (what they may do) for CONNECT,
// SUBSCRIBE and SEND. Everything here is built once at startup from config, is immutable
// afterwards, and so may be used from any worker thread without locks. Nothing here throws
// on the event loop: checks return results, and only the startup helpers documented as such
// throw. Nothing here logs; every refusal carries a reason for the caller's log line, and
// the client should only ever be told "access refused".
namespace broker::auth {

// ---------------------------------------------------------------------------------------------
// Principals and permissions
// ---------------------------------------------------------------------------------------------

enum class action { subscribe, send };

// Destination patterns a principal may subscribe to or send to, already expanded for that
// principal (no `{user}` left). The session keeps one for its connection: it is made once at
// CONNECT by authorizer::permissions_for(), and every SUBSCRIBE and SEND asks allows().
//
// Patterns shared by many connections (rules without `{user}`) are held by shared_ptr, so an
// idle connection costs a pointer per applicable pattern, not a copy of it.
class permissions {
 public:
  // Grants nothing.
  permissions() = default;
  // Grants everything: the anonymous development setup (authorizer::allow_all()).
  static permissions all();

  // Cost: literal patterns are one string compare; a wildcard pattern first compares its
  // literal prefix (up to the first '*' segment) and only then runs the segment matcher, so a
  // destination in another subtree is rejected without allocating.
  bool allows(action a, std::string_view destination) const;

  bool grants_everything() const noexcept { return all_; }
  bool empty() const noexcept { return !all_ && subscribe_.empty() && send_.empty(); }

  // Adds a pattern; `{user}` must already be expanded.
  void add(action a, destination_pattern pattern);
  void merge(const permissions& other);

  // The pattern texts, for logs and the admin API.
  std::vector<std::string> patterns(action a) const;

 private:
  struct entry {
    destination_pattern pattern;
    std::size_t prefix_bytes;  // text before the separator preceding the first '*' segment
    bool literal;              // no '*' segment: equal text is the only match
  };
  using entry_ptr = std::shared_ptr<const entry>;
  friend class authorizer;  // shares its rule entries instead of copying them

  static entry_ptr make_entry(destination_pattern pattern);
  std::vector<entry_ptr>& list(action a) { return a == action::subscribe ? subscribe_ : send_; }
  const std::vector<entry_ptr>& list(action a) const {
    return a == action::subscribe ? subscribe_ : send_;
  }

  bool all_ = false;
  std::vector<entry_ptr> subscribe_;
  std::vector<entry_ptr> send_;
};

// Who a connection authenticated as.
struct principal {
  std::string user;                // never empty
  std::vector<std::string> roles;  // matched against authorization rules' `roles`
  // When a bearer token stops being valid (its `exp`); nullopt for passcode users and for
  // tokens without `exp`. The session should refuse frames, or disconnect, after it.
  std::optional<std::chrono::system_clock::time_point> expires_at;
  // What the bearer token itself grants (its `stomp` claim), `{user}` already expanded.
  permissions token_grants;
};

// True when `user` can be substituted for `{user}` without changing a pattern's shape: not
// empty, and no '.', '/' or '*'. For any other name `{user}` patterns grant nothing (see
// expand_user); the config loader may want to warn about such user names.
bool is_placeholder_safe(std::string_view user) noexcept;

// ---------------------------------------------------------------------------------------------
// Passcodes (static users in the config file)
// ---------------------------------------------------------------------------------------------
//
// Stored as "pbkdf2-sha256$<iterations>$<salt>$<hash>": PBKDF2-HMAC-SHA256 (RFC 8018) with a
// 16-byte random salt and a 32-byte derived key, both in standard base64 with padding
// (RFC 4648 §4). Anything else, a plain-text passcode in particular, does not parse, so the
// config loader can refuse it.
//
// Cost: verification runs all the iterations; 600 000 take about 125 ms of one core on the
// development machine (AMD EPYC, OpenSSL 3.0, Release), 200 ms when it is busy. Run it off
// the event loop. A client that reconnects often pays that every CONNECT; if that matters,
// cache successful checks keyed by a keyed hash (HMAC with a per-process random key) of login
// and passcode, with a short TTL, never by the passcode itself.

// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
inline constexpr std::uint32_t default_passcode_iterations = 600'000;
// Fewer is refused: a hash that cheap to brute-force is a config mistake.
inline constexpr std::uint32_t min_passcode_iterations = 10'000;
// More is refused too: 10 million already pin a verification thread for seconds per CONNECT.
inline constexpr std::uint32_t max_passcode_iterations = 10'000'000;

struct passcode_hash {
  std::uint32_t iterations = 0;
  std::vector<unsigned char> salt;  // 16 to 64 bytes
  std::vector<unsigned char> key;   // 32 bytes: the PBKDF2 output
};

// nullopt, with the reason in *error, when `encoded` is not a well-formed hash string. The
// reason says what was expected and never repeats `encoded`, which may be a plain passcode.
std::optional<passcode_hash> parse_passcode_hash(std::string_view encoded, std::string* error);

// The encoded form; parse_passcode_hash(to_string(h)) == h.
std::string to_string(const passcode_hash& h);

// A fresh salt and the encoded hash of `passcode`, for a `hash-passcode` tool or tests.
// Startup/CLI only: throws std::invalid_argument when `iterations` is outside
// [min_passcode_iterations, max_passcode_iterations], std::runtime_error when OpenSSL fails.
std::string hash_passcode(std::string_view passcode,
                          std::uint32_t iterations = default_passcode_iterations);

// Pure and thread-safe; slow by design (see above). The final comparison is constant-time.
bool verify_passcode(std::string_view passcode, const passcode_hash& stored) noexcept;
// False as well when `encoded` does not parse.
bool verify_passcode(std::string_view passcode, std::string_view encoded) noexcept;

// The static users of the config file: name, passcode hash, roles. Built at startup,
// read-only afterwards, so authenticate() may run on any thread (it is slow: see above).
class user_table {
 public:
  // False when `name` is empty or already present.
  bool add(std::string name, passcode_hash passcode, std::vector<std::string> roles);

  // The principal when `login` exists and `passcode` matches. An unknown login costs one
  // verification too, so response time does not reveal which logins exist.
  std::optional<principal> authenticate(std::string_view login, std::string_view passcode) const;

  bool contains(std::string_view login) const;
  std::size_t size() const noexcept { return users_.size(); }

 private:
  struct user {
    passcode_hash passcode;
    std::vector<std::string> roles;
  };
  // Transparent, so a std::string_view login finds its entry without a copy.
  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, user, name_hash, std::equal_to<>> users_;
};

// ---------------------------------------------------------------------------------------------
// Bearer tokens: JWT in JWS compact serialization (RFC 7515, 7518, 7519)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Authorization rules
// ---------------------------------------------------------------------------------------------

// One grant from the config file. It applies to a principal named in `users` ("*": every
// authenticated principal) or holding one of `roles`. Patterns use destination_pattern syntax
// plus the placeholder `{user}`, replaced by the principal's name before matching: for
// "/topic/dm.{user}.*", alice may subscribe to /topic/dm.alice.x, not /topic/dm.bob.x.
//
// A name that is not placeholder-safe (empty, or containing '.', '/' or '*') would change the
// pattern's shape: "a.*" would turn "/topic/dm.{user}" into "/topic/dm.a.*". Such names are
// not escaped but refused: `{user}` patterns grant them nothing, their other grants stay.
// (Escaping would buy little: a destination segment never contains '.' or '/', and pattern
// syntax has no literal '*'.)
struct rule {
  // Initialized, so a designated initializer may leave any of them out without a warning.
  std::vector<std::string> users = {};
  std::vector<std::string> roles = {};
  std::vector<std::string> subscribe = {};
  std::vector<std::string> send = {};
};

struct rule_error {
  std::size_t rule;  // index into the rules passed to authorizer::create()
  std::string what;  // "subscribe[1]: '*' and '**' must be whole segments, ..."
};

struct authorizer_result;

// Decides SUBSCRIBE and SEND. A principal may do something when a rule that applies to it
// grants it, or its token grants it; nothing else is allowed. Made once at startup;
// permissions_for() is const and thread-safe. A default-constructed authorizer has no rules,
// like create({}): only token grants allow anything.
class authorizer {
 public:
  // Every principal may do everything: for an anonymous development setup.
  static authorizer allow_all();

  // Parses every pattern once. With no rules, only token grants allow anything. Collects
  // every problem (bad pattern, unknown placeholder, rule applying to nobody or granting
  // nothing) rather than stopping at the first.
  static authorizer_result create(const std::vector<rule>& rules);

  // Once per connection, at CONNECT: the rules applying to `p` with `{user}` expanded, plus
  // p.token_grants. Keep the result with the session and ask it on every frame.
  permissions permissions_for(const principal& p) const;

  // Convenience for one-off checks; a session should hold permissions_for() instead.
  bool allows(const principal& p, action a, std::string_view destination) const;

 private:
  struct compiled_rule {
    std::vector<std::string> users;  // "*" already folded into any_user
    bool any_user = false;
    std::vector<std::string> roles;
    // Patterns without placeholders, parsed once and shared with every permissions object.
    std::vector<permissions::entry_ptr> subscribe, send;
    // Patterns with `{user}`, checked at startup, expanded and parsed per principal.
    std::vector<std::string> subscribe_templates, send_templates;
  };
  bool applies(const compiled_rule& r, const principal& p) const;

  bool allow_all_ = false;
  std::vector<compiled_rule> rules_;
};

struct authorizer_result {
  std::optional<authorizer> value;  // when errors is empty
  std::vector<rule_error> errors;
};

namespace detail {

// RFC 4648: §5 base64url without padding (JOSE), §4 base64 with padding (passcode hashes).
// Decoding is strict: nullopt for any character outside the alphabet, wrong padding, a
// length no encoding produces, or non-zero bits left over in the last character.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// `pattern` with every "{user}" replaced by `user`; nullopt when `user` is not
// placeholder-safe. A pattern without placeholders comes back unchanged.
std::optional<std::string> expand_user(std::string_view pattern, std::string_view user);

// Any '{' or '}' that is not part of "{user}": an unknown placeholder or a typo.
bool has_unknown_placeholder(std::string_view pattern) noexcept;

}  // namespace detail

}  // namespace broker::auth
