#pragma once

#include "auth/principal.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

// Passcodes: the static users of the config file and their PBKDF2 hashes.
namespace broker::auth {

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
  // verification too, against a decoy hash with as many iterations as the costliest user's,
  // so response time does not reveal which logins exist.
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
  std::uint32_t decoy_iterations_ = default_passcode_iterations;  // the costliest user's
};

}  // namespace broker::auth
