#include "auth/passcode.hpp"

#include "auth/base64.hpp"
#include "stomp/decimal.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <stdexcept>
#include <utility>

namespace broker::auth {
namespace {

constexpr std::string_view scheme = "pbkdf2-sha256";
constexpr std::size_t salt_bytes = 16;  // NIST SP 800-132 asks for at least 128 bits
constexpr std::size_t min_salt_bytes = 16;
constexpr std::size_t max_salt_bytes = 64;
constexpr std::size_t key_bytes = 32;  // SHA-256 output: more would only cost the defender

constexpr std::string_view expected_format =
    "expected 'pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>' as made by the "
    "passcode hashing tool; plain-text passcodes are refused";

bool derive(std::string_view passcode, const std::vector<unsigned char>& salt,
            std::uint32_t iterations, unsigned char* out, std::size_t out_bytes) noexcept {
  if (passcode.size() > INT_MAX || salt.size() > INT_MAX || iterations > INT_MAX) return false;
  return PKCS5_PBKDF2_HMAC(passcode.data(), static_cast<int>(passcode.size()), salt.data(),
                           static_cast<int>(salt.size()), static_cast<int>(iterations),
                           EVP_sha256(), static_cast<int>(out_bytes), out) == 1;
}

std::string as_string(const std::vector<unsigned char>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

std::vector<unsigned char> as_bytes(std::string_view s) {
  return std::vector<unsigned char>(s.begin(), s.end());
}

}  // namespace

std::optional<passcode_hash> parse_passcode_hash(std::string_view encoded, std::string* error) {
  auto fail = [&](std::string_view what) -> std::optional<passcode_hash> {
    if (error)
      *error = what.empty() ? std::string(expected_format)
                            : fmt::format("{} ({})", what, expected_format);
    return std::nullopt;
  };

  std::array<std::string_view, 4> fields;
  std::size_t n = 0;
  for (std::size_t start = 0;;) {
    const std::size_t end = encoded.find('$', start);
    if (n == fields.size()) return fail("");
    fields[n++] = encoded.substr(start, end - start);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (n != fields.size() || fields[0] != scheme) return fail("");

  // Decimal, no sign, no leading zero: one spelling per value.
  const std::string_view digits = fields[1];
  const auto iterations = stomp::parse_decimal<std::uint64_t>(digits);
  if (!iterations || digits[0] == '0')
    return fail("the iteration count is not a positive decimal number");
  if (*iterations < min_passcode_iterations || *iterations > max_passcode_iterations)
    return fail(fmt::format("the iteration count must be between {} and {}, got {}",
                            min_passcode_iterations, max_passcode_iterations, *iterations));

  auto salt = detail::base64_decode(fields[2]);
  if (!salt) return fail("the salt is not valid base64");
  if (salt->size() < min_salt_bytes || salt->size() > max_salt_bytes)
    return fail(fmt::format("the salt must be {} to {} bytes, got {}", min_salt_bytes,
                            max_salt_bytes, salt->size()));
  auto key = detail::base64_decode(fields[3]);
  if (!key) return fail("the hash is not valid base64");
  if (key->size() != key_bytes)
    return fail(fmt::format("the hash must be {} bytes, got {}", key_bytes, key->size()));

  return passcode_hash{static_cast<std::uint32_t>(*iterations), as_bytes(*salt), as_bytes(*key)};
}

std::string to_string(const passcode_hash& h) {
  return fmt::format("{}${}${}${}", scheme, h.iterations, detail::base64_encode(as_string(h.salt)),
                     detail::base64_encode(as_string(h.key)));
}

std::string hash_passcode(std::string_view passcode, std::uint32_t iterations) {
  if (iterations < min_passcode_iterations || iterations > max_passcode_iterations)
    throw std::invalid_argument(fmt::format("passcode iterations must be between {} and {}, got {}",
                                            min_passcode_iterations, max_passcode_iterations,
                                            iterations));
  passcode_hash h;
  h.iterations = iterations;
  h.salt.resize(salt_bytes);
  h.key.resize(key_bytes);
  if (RAND_bytes(h.salt.data(), static_cast<int>(h.salt.size())) != 1)
    throw std::runtime_error("RAND_bytes failed: no salt for the passcode hash");
  if (!derive(passcode, h.salt, iterations, h.key.data(), h.key.size()))
    throw std::runtime_error("PKCS5_PBKDF2_HMAC failed");
  return to_string(h);
}

bool verify_passcode(std::string_view passcode, const passcode_hash& stored) noexcept {
  // A hand-built passcode_hash gets the same bounds as a parsed one.
  if (stored.iterations < min_passcode_iterations || stored.iterations > max_passcode_iterations ||
      stored.key.size() != key_bytes || stored.salt.size() < min_salt_bytes ||
      stored.salt.size() > max_salt_bytes)
    return false;
  std::array<unsigned char, key_bytes> derived;
  const bool ok =
      derive(passcode, stored.salt, stored.iterations, derived.data(), derived.size()) &&
      CRYPTO_memcmp(derived.data(), stored.key.data(), key_bytes) == 0;
  OPENSSL_cleanse(derived.data(), derived.size());
  return ok;
}

bool verify_passcode(std::string_view passcode, std::string_view encoded) noexcept {
  try {
    auto h = parse_passcode_hash(encoded, nullptr);
    return h && verify_passcode(passcode, *h);
  } catch (...) {  // allocation failure while parsing: refuse rather than throw
    return false;
  }
}

bool user_table::add(std::string name, passcode_hash passcode, std::vector<std::string> roles) {
  if (name.empty()) return false;
  const std::uint32_t iterations = passcode.iterations;
  if (!users_.try_emplace(std::move(name), user{std::move(passcode), std::move(roles)}).second)
    return false;
  decoy_iterations_ = users_.size() == 1 ? iterations : std::max(decoy_iterations_, iterations);
  return true;
}

std::optional<principal> user_table::authenticate(std::string_view login,
                                                  std::string_view passcode) const {
  const auto it = users_.find(login);
  if (it == users_.end()) {
    // Same work as for a real user, so timing does not tell which logins exist.
    const passcode_hash decoy{decoy_iterations_, std::vector<unsigned char>(salt_bytes, 0x5a),
                              std::vector<unsigned char>(key_bytes, 0)};
    (void)verify_passcode(passcode, decoy);
    return std::nullopt;
  }
  if (!verify_passcode(passcode, it->second.passcode)) return std::nullopt;
  principal p;
  p.user = it->first;
  p.roles = it->second.roles;
  return p;
}

bool user_table::contains(std::string_view login) const {
  return users_.find(login) != users_.end();
}

}  // namespace broker::auth
